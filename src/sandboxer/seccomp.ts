/**
 * The sandbox's seccomp profile, chosen as containerd's CRI chooses it: none when
 * privileged or unconfined, containerd's default profile for RuntimeDefault, a JSON
 * profile file for Localhost. Pure: the caller reads a Localhost profile's file.
 *
 * @module
 */
import { InvalidArgumentError } from "../errors.ts";
import {
  type LinuxSandboxSecurityContext,
  type SecurityProfile,
  SecurityProfile_ProfileType as ProfileType,
} from "../gen/cri/runtime/v1/api.ts";
import type { OciSeccomp, OciSeccompRule } from "./oci.ts";

/** What the security context asks for. */
export type SeccompChoice =
  | { kind: "none" }
  | { kind: "runtime-default" }
  | { kind: "localhost"; path: string };

/** The deprecated seccomp_profile_path's forms, as a SecurityProfile. */
function profileFromPath(path: string): SecurityProfile {
  if (path === "" || path === "runtime/default" || path === "docker/default") {
    return { profileType: ProfileType.RuntimeDefault, localhostRef: "" };
  }
  if (path === "unconfined") return { profileType: ProfileType.Unconfined, localhostRef: "" };
  if (path.startsWith("localhost/")) {
    return { profileType: ProfileType.Localhost, localhostRef: path.slice("localhost/".length) };
  }
  throw new InvalidArgumentError(
    `invalid seccomp_profile_path ${
      JSON.stringify(path)
    }: expected runtime/default, unconfined or localhost/PATH`,
  );
}

/**
 * The profile the security context asks for. `seccompEnabled` false (a kernel without
 * seccomp) allows only unconfined pods.
 */
export function seccompChoice(
  sc: LinuxSandboxSecurityContext | undefined,
  seccompEnabled: boolean,
): SeccompChoice {
  const profile = sc?.seccomp ??
    (sc?.seccompProfilePath ? profileFromPath(sc.seccompProfilePath) : undefined);
  if (sc?.privileged) return { kind: "none" };
  if (!seccompEnabled) {
    if (profile && profile.profileType !== ProfileType.Unconfined) {
      throw new InvalidArgumentError(
        "the pod asks for a seccomp profile, but this kernel has no seccomp: use Unconfined",
      );
    }
    return { kind: "none" };
  }
  if (!profile) return { kind: "none" };
  if (profile.profileType !== ProfileType.Localhost && profile.localhostRef !== "") {
    throw new InvalidArgumentError(
      "seccomp localhost_ref may only be set with profile type Localhost",
    );
  }
  switch (profile.profileType) {
    case ProfileType.Unconfined:
      return { kind: "none" };
    case ProfileType.RuntimeDefault:
      return { kind: "runtime-default" };
    case ProfileType.Localhost: {
      const path = profile.localhostRef.replace(/^localhost\//, "");
      if (!path.startsWith("/")) {
        throw new InvalidArgumentError(
          `seccomp localhost profile ${JSON.stringify(path)} must be an absolute path`,
        );
      }
      return { kind: "localhost", path };
    }
    default:
      throw new InvalidArgumentError(`unknown seccomp profile type ${profile.profileType}`);
  }
}

/** Parses a Localhost profile file (an OCI LinuxSeccomp object, as containerd reads it). */
export function parseSeccompProfile(text: string, path: string): OciSeccomp {
  const bad = (why: string) =>
    new InvalidArgumentError(`seccomp profile ${JSON.stringify(path)}: ${why}`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw bad(`not JSON (${err instanceof Error ? err.message : err})`);
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw bad("not a JSON object");
  const o = raw as Record<string, unknown>;
  const strings = (v: unknown, name: string): string[] | undefined => {
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
      throw bad(`${name} must be a list of strings`);
    }
    return v as string[];
  };
  const count = (v: unknown, name: string): number | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      throw bad(`${name} must be a non-negative integer`);
    }
    return v;
  };
  if (typeof o.defaultAction !== "string") throw bad("defaultAction (a string) is required");
  const out: OciSeccomp = { defaultAction: o.defaultAction };
  const set = <K extends keyof OciSeccomp>(k: K, v: OciSeccomp[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set("defaultErrnoRet", count(o.defaultErrnoRet, "defaultErrnoRet"));
  set("architectures", strings(o.architectures, "architectures"));
  set("flags", strings(o.flags, "flags"));
  if (typeof o.listenerPath === "string") out.listenerPath = o.listenerPath;
  if (typeof o.listenerMetadata === "string") out.listenerMetadata = o.listenerMetadata;
  if (o.syscalls !== undefined && o.syscalls !== null) {
    if (!Array.isArray(o.syscalls)) throw bad("syscalls must be a list");
    out.syscalls = o.syscalls.map((s, i): OciSeccompRule => {
      if (!s || typeof s !== "object") throw bad(`syscalls[${i}] must be an object`);
      const r = s as Record<string, unknown>;
      const names = strings(r.names, `syscalls[${i}].names`) ?? [];
      if (typeof r.action !== "string") throw bad(`syscalls[${i}].action must be a string`);
      const rule: OciSeccompRule = { names, action: r.action };
      const errnoRet = count(r.errnoRet, `syscalls[${i}].errnoRet`);
      if (errnoRet !== undefined) rule.errnoRet = errnoRet;
      if (r.args !== undefined && r.args !== null) {
        if (!Array.isArray(r.args)) throw bad(`syscalls[${i}].args must be a list`);
        rule.args = r.args.map((a, j) => {
          const arg = (a ?? {}) as Record<string, unknown>;
          const where = `syscalls[${i}].args[${j}]`;
          if (typeof arg.op !== "string") throw bad(`${where}.op must be a string`);
          const valueTwo = count(arg.valueTwo, `${where}.valueTwo`);
          return {
            index: count(arg.index, `${where}.index`) ?? 0,
            value: count(arg.value, `${where}.value`) ?? 0,
            ...(valueTwo ? { valueTwo } : {}),
            op: arg.op,
          };
        });
      }
      return rule;
    });
  }
  return out;
}

/**
 * Syscalls containerd's default profile allows for every process (syscall names are
 * the kernel's; the selection is containerd's, v2.1).
 */
const ALLOWED = `
_llseek _newselect accept accept4 access adjtimex alarm bind brk cachestat
capget capset chdir chmod chown chown32 clock_adjtime clock_adjtime64 clock_getres
clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64
close close_range connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1
epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd
eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64
fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat
fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat
fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue
futex_time64 futex_wait futex_waitv futex_wake futimesat get_robust_list get_thread_area
getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32
getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority
getrandom getresgid getresgid32 getresuid getresuid32 getrlimit getrusage getsid
getsockname getsockopt gettid gettimeofday getuid getuid32 getxattr inotify_add_watch
inotify_init inotify_init1 inotify_rm_watch io_cancel io_destroy io_getevents
io_pgetevents io_pgetevents_time64 io_setup io_submit ioctl ioprio_get ioprio_set ipc
kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32
lgetxattr link linkat listen listxattr llistxattr lremovexattr lseek lsetxattr lstat
lstat64 madvise map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir
mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify
mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink
mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at
nanosleep newfstatat open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2
pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read
readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rseq
rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_get_priority_max
sched_get_priority_min sched_getaffinity sched_getattr sched_getparam sched_getscheduler
sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr
sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto set_robust_list
set_thread_area set_tid_address setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32
setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid
setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit setsid setsockopt setuid
setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx
symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create
timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64
timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64
times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat
utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
`.trim().split(/\s+/);

/** More syscalls allowed on some architectures. */
const BY_ARCH: Record<string, string[]> = {
  amd64: ["arch_prctl", "modify_ldt"],
  arm64: [
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "sync_file_range2",
    "breakpoint",
    "cacheflush",
    "set_tls",
  ],
};

/** Seccomp architectures of a process of each host architecture (its compat modes too). */
const ARCHITECTURES: Record<string, string[]> = {
  amd64: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
  arm64: ["SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"],
};

/** Syscalls each capability makes safe to allow. */
const BY_CAPABILITY: Record<string, string[]> = {
  CAP_DAC_READ_SEARCH: ["open_by_handle_at"],
  CAP_SYS_ADMIN: [
    "bpf",
    "clone",
    "clone3",
    "fanotify_init",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "perf_event_open",
    "quotactl",
    "quotactl_fd",
    "setdomainname",
    "sethostname",
    "setns",
    "syslog",
    "umount",
    "umount2",
    "unshare",
  ],
  CAP_SYS_BOOT: ["reboot"],
  CAP_SYS_CHROOT: ["chroot"],
  CAP_SYS_MODULE: ["delete_module", "init_module", "finit_module"],
  CAP_SYS_PACCT: ["acct"],
  CAP_SYS_PTRACE: [
    "kcmp",
    "pidfd_getfd",
    "process_madvise",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
  ],
  CAP_SYS_RAWIO: ["iopl", "ioperm"],
  CAP_SYS_TIME: ["settimeofday", "stime", "clock_settime", "clock_settime64"],
  CAP_SYS_TTY_CONFIG: ["vhangup"],
  CAP_SYS_NICE: ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"],
  CAP_SYSLOG: ["syslog"],
  CAP_BPF: ["bpf"],
  CAP_PERFMON: ["perf_event_open"],
};

const AF_VSOCK = 40;
const ENOSYS = 38;
/** CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET. */
const CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 |
  0x20000000 | 0x40000000;
/** personality(2) values a container may set: the default, UNAME26, ADDR_NO_RANDOMIZE, both, query. */
const PERSONALITIES = [0x0, 0x0008, 0x20000, 0x20008, 0xffffffff];

/**
 * containerd's default seccomp profile for a process with `capabilities` (its bounding
 * set) on `arch` (Go's names: amd64, arm64) and a kernel of version `kernel`.
 */
export function defaultSeccompProfile(
  capabilities: readonly string[],
  arch: string,
  kernel: { major: number; minor: number },
): OciSeccomp {
  const allow = (names: string[], args?: OciSeccompRule["args"]): OciSeccompRule =>
    args ? { names, action: "SCMP_ACT_ALLOW", args } : { names, action: "SCMP_ACT_ALLOW" };
  const rules: OciSeccompRule[] = [
    allow([...ALLOWED]),
    allow(["socket"], [{ index: 0, value: AF_VSOCK, op: "SCMP_CMP_NE" }]),
    ...PERSONALITIES.map((p) =>
      allow(["personality"], [{ index: 0, value: p, op: "SCMP_CMP_EQ" }])
    ),
  ];
  // ptrace and process_vm_* are safe from kernel 4.8 on (seccomp can no longer be bypassed).
  if (kernel.major > 4 || (kernel.major === 4 && kernel.minor >= 8)) {
    rules.push(allow(["process_vm_readv", "process_vm_writev", "ptrace"]));
  }
  if (BY_ARCH[arch]) rules.push(allow([...BY_ARCH[arch]]));
  for (const cap of capabilities) {
    if (BY_CAPABILITY[cap]) rules.push(allow([...BY_CAPABILITY[cap]]));
  }
  if (!capabilities.includes("CAP_SYS_ADMIN")) {
    // Without CAP_SYS_ADMIN: clone only without new namespaces; clone3 (whose flags seccomp
    // cannot inspect) fails ENOSYS so libcs fall back to clone.
    rules.push(
      allow(["clone"], [{ index: 0, value: CLONE_NAMESPACE_FLAGS, op: "SCMP_CMP_MASKED_EQ" }]),
      { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS },
    );
  }
  return {
    defaultAction: "SCMP_ACT_ERRNO",
    architectures: [...(ARCHITECTURES[arch] ?? [])],
    syscalls: rules,
  };
}
