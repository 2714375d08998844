/** What a request that does not decode becomes; handlers answer INVALID_ARGUMENT. */
export class MalformedRequest {
  constructor(readonly reason: string) {}
}
