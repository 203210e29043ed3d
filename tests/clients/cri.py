"""A minimal CRI (Kubernetes Container Runtime Interface, runtime.v1) client: what the kubelet
sends, without crictl (not packaged in Debian 12) and without generated protobuf code.

Messages are encoded by hand from the field numbers of k8s.io/cri-api's api.proto (only the
fields used here), and sent with grpcio's generic unary calls over containerd's socket. A pod's
RuntimeClass handler travels as `RunPodSandboxRequest.runtime_handler`: containerd's CRI plugin
looks it up in its `runtimes` table, which is how a RuntimeClass with handler "ocish" ends up
running `ocish` through the runc shim's BinaryName.
"""
from __future__ import annotations

import time

# NamespaceMode
POD, CONTAINER, NODE = 0, 1, 2
# ContainerState
CREATED, RUNNING, EXITED, UNKNOWN = 0, 1, 2, 3


# --- protobuf wire format -----------------------------------------------------------------------

def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def msg(*fields: tuple[int, object]) -> bytes:
    """Encode (field number, value) pairs: str/bytes/nested message (bytes) -> length-delimited,
    int/bool -> varint, list -> the field repeated, None -> left out."""
    out = bytearray()
    for num, value in fields:
        values = value if isinstance(value, list) else [value]
        for v in values:
            if v is None:
                continue
            if isinstance(v, bool) or isinstance(v, int):
                out += _varint(num << 3 | 0) + _varint(int(v))
            else:
                data = v.encode() if isinstance(v, str) else bytes(v)
                out += _varint(num << 3 | 2) + _varint(len(data)) + data
    return bytes(out)


def string_map(num: int, mapping: dict[str, str]) -> list[tuple[int, object]]:
    return [(num, msg((1, k), (2, v))) for k, v in mapping.items()]


def decode(data: bytes) -> dict[int, list]:
    """{field number: [values]}: varints as int, length-delimited as bytes (decode nested ones
    again with `decode`)."""
    fields: dict[int, list] = {}
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(data, i)
        elif wire == 2:
            n, i = _read_varint(data, i)
            value, i = data[i:i + n], i + n
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        fields.setdefault(num, []).append(value)
    return fields


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def first(fields: dict, num: int, default=None):
    return fields.get(num, [default])[0]


def text(fields: dict, num: int) -> str:
    return first(fields, num, b"").decode()


def int32(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


# --- the runtime service ----------------------------------------------------------------------------

class CRI:
    def __init__(self, socket_path: str) -> None:
        import grpc
        self.grpc = grpc
        self.channel = grpc.insecure_channel(f"unix://{socket_path}")

    def close(self) -> None:
        self.channel.close()

    def call(self, method: str, request: bytes, timeout: float = 60) -> dict:
        fn = self.channel.unary_unary(f"/runtime.v1.RuntimeService/{method}",
                                      request_serializer=lambda b: b,
                                      response_deserializer=lambda b: b)
        return decode(fn(request, timeout=timeout))

    def version(self) -> dict:
        r = self.call("Version", msg((1, "v1")))
        return {"runtime_name": text(r, 2), "runtime_version": text(r, 3),
                "runtime_api_version": text(r, 4)}

    @staticmethod
    def sandbox_config(name: str, uid: str, log_dir: str, cgroup_parent: str) -> bytes:
        namespaces = msg((1, NODE), (2, CONTAINER), (3, POD))  # host network: no CNI needed
        security = msg((1, namespaces))
        linux = msg((1, cgroup_parent), (2, security))
        return msg((1, msg((1, name), (2, uid), (3, "default"), (4, 0))),
                   (3, log_dir), (8, linux))

    def run_pod_sandbox(self, config: bytes, runtime_handler: str) -> str:
        return text(self.call("RunPodSandbox", msg((1, config), (2, runtime_handler)), 120), 1)

    def create_container(self, sandbox_id: str, sandbox_config: bytes, name: str, image: str,
                         command: list[str], log_path: str) -> str:
        # as the kubelet does for a v1 pod: own pid namespace, the pod's ipc/uts, the host network
        namespaces = msg((1, NODE), (2, CONTAINER), (3, POD))
        linux = msg((2, msg((3, namespaces))))  # LinuxContainerConfig.security_context
        config = msg((1, msg((1, name), (2, 0))), (2, msg((1, image))), (3, command),
                     (11, log_path), (15, linux))
        return text(self.call("CreateContainer", msg((1, sandbox_id), (2, config),
                                                     (3, sandbox_config))), 1)

    def start_container(self, container_id: str) -> None:
        self.call("StartContainer", msg((1, container_id)))

    def container_status(self, container_id: str) -> dict:
        st = decode(first(self.call("ContainerStatus", msg((1, container_id))), 1, b""))
        return {"id": text(st, 1), "state": first(st, 3, CREATED),
                "exit_code": int32(first(st, 7, 0)), "reason": text(st, 10),
                "message": text(st, 11), "log_path": text(st, 15)}

    def wait_state(self, container_id: str, state: int, timeout: float = 30) -> dict:
        end = time.monotonic() + timeout
        while True:
            st = self.container_status(container_id)
            if st["state"] == state or time.monotonic() > end:
                return st
            time.sleep(0.1)

    def exec_sync(self, container_id: str, cmd: list[str], timeout: int = 30) -> dict:
        r = self.call("ExecSync", msg((1, container_id), (2, cmd), (3, timeout)), timeout + 10)
        return {"stdout": first(r, 1, b"").decode(), "stderr": first(r, 2, b"").decode(),
                "exit_code": int32(first(r, 3, 0))}

    def update_container_resources(self, container_id: str, memory: int, cpu_shares: int) -> None:
        resources = msg((3, cpu_shares), (4, memory))  # LinuxContainerResources
        self.call("UpdateContainerResources", msg((1, container_id), (2, resources)))

    def stop_container(self, container_id: str, timeout: int = 0) -> None:
        self.call("StopContainer", msg((1, container_id), (2, timeout)))

    def remove_container(self, container_id: str) -> None:
        self.call("RemoveContainer", msg((1, container_id)))

    def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self.call("StopPodSandbox", msg((1, sandbox_id)))

    def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self.call("RemovePodSandbox", msg((1, sandbox_id)))
