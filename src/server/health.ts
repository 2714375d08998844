/**
 * grpc.health.v1.Health on the agent's socket: SERVING only while the agent is
 * connected to containerd and caught up; NOT_SERVING otherwise. The service names ""
 * (the whole agent) and "podsandboxd.v1.Sandboxes" are known.
 *
 * @module
 */
import type * as grpc from "@grpc/grpc-js";
import type { ConnectionStatus } from "../controller/controller.ts";
import { InvalidArgumentError, NotFoundError } from "../errors.ts";
import { rejectMalformed } from "./handlers.ts";
import { MalformedRequest } from "./malformed.ts";
import {
  type HealthCheckRequest,
  type HealthCheckResponse,
  HealthCheckResponse_ServingStatus as Serving,
} from "../gen/grpc/health/v1/health.ts";
import { toServiceError } from "./status.ts";
import type { SandboxService } from "./types.ts";

export const HEALTH_SERVICES = ["", "podsandboxd.v1.Sandboxes"];

function servingOf(status: ConnectionStatus): Serving {
  return status.state === "connected" ? Serving.SERVING : Serving.NOT_SERVING;
}

function checkService(name: string): void {
  if (!HEALTH_SERVICES.includes(name)) {
    throw new NotFoundError(`health: unknown service ${JSON.stringify(name)}`);
  }
}

export function healthHandlers(service: SandboxService) {
  return {
    check(
      call: grpc.ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>,
      callback: grpc.sendUnaryData<HealthCheckResponse>,
    ) {
      try {
        rejectMalformed(call.request, "Health/Check");
        checkService(call.request.service);
        callback(null, { status: servingOf(service.status) });
      } catch (err) {
        callback(toServiceError(err, "Health/Check") as grpc.ServiceError);
      }
    },
    watch(call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) {
      if (call.request instanceof MalformedRequest) {
        call.destroy(
          toServiceError(
            new InvalidArgumentError(`malformed Health/Watch request: ${call.request.reason}`),
            "Health/Watch",
          ) as Error,
        );
        return;
      }
      if (!HEALTH_SERVICES.includes(call.request.service)) {
        // Per the protocol, Watch reports an unknown service instead of failing.
        call.write({ status: Serving.SERVICE_UNKNOWN });
        return;
      }
      let last: Serving | undefined;
      const send = (status: ConnectionStatus) => {
        const serving = servingOf(status);
        if (serving !== last) call.write({ status: serving });
        last = serving;
      };
      const unsubscribe = service.onStatusChange(send);
      call.on("cancelled", unsubscribe);
      call.on("close", unsubscribe);
      send(service.status);
    },
  };
}
