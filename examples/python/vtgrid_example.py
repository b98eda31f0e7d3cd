#!/usr/bin/env python3
"""A vtgrid client in Python, as a third-party user writes one: stubs generated from proto/ with
grpcio-tools (at run time, into a scratch directory; nothing generated is committed), then the
host path and the standard gRPC tooling.

    python vtgrid_example.py --endpoint 127.0.0.1:7400 services
    python vtgrid_example.py --endpoint 127.0.0.1:7400 write A00000 backup.img
    python vtgrid_example.py --endpoint 127.0.0.1:7400 read A00000 copy.img
    python vtgrid_example.py --endpoint 127.0.0.1:7400 events --count 5
    python vtgrid_example.py --endpoint 127.0.0.1:7400 demo   # all of it, checked (the test runs this)

Errors are read with the generic decoder (grpc_status.rpc_status.from_call), which finds the
google.rpc.ErrorInfo whose reason is the stable vtgrid reason (docs/errors.md).
"""

import argparse
import importlib
import os
import pathlib
import sys
import tempfile

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

REPO = pathlib.Path(__file__).resolve().parents[2]
PUBLIC_PROTOS = ["common", "host", "admin", "status"]
CHUNK = 1 << 20  # 1 MiB per write message; the message limit is 64 MiB.
DOMAIN = "vtgrid.dev"


def generate(out_dir):
    """Compile proto/vtgrid/v1/*.proto into out_dir and import the modules."""
    from grpc_tools import protoc

    include = str(pathlib.Path(protoc.__file__).parent / "_proto")
    files = [f"vtgrid/v1/{p}.proto" for p in PUBLIC_PROTOS]
    args = ["protoc", f"-I{REPO / 'proto'}", f"-I{include}",
            f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *files]
    if protoc.main(args) != 0:
        sys.exit("protoc failed on " + " ".join(files))
    sys.path.insert(0, str(out_dir))
    mods = {}
    for p in PUBLIC_PROTOS:
        mods[p] = importlib.import_module(f"vtgrid.v1.{p}_pb2")
        mods[p + "_grpc"] = importlib.import_module(f"vtgrid.v1.{p}_pb2_grpc")
    return mods


def reason_of(error):
    """The vtgrid reason of a failed call, read the generic way (google.rpc.Status)."""
    status = rpc_status.from_call(error)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.domain == DOMAIN:
                return info.reason
    return None


class Client:
    def __init__(self, endpoint, pb):
        self.pb = pb
        self.channel = grpc.insecure_channel(endpoint, options=[
            ("grpc.max_send_message_length", 64 << 20),
            ("grpc.max_receive_message_length", 64 << 20),
        ])
        self.host = pb["host_grpc"].HostServiceStub(self.channel)
        self.admin = pb["admin_grpc"].AdminServiceStub(self.channel)
        self.status = pb["status_grpc"].StatusServiceStub(self.channel)

    def services(self):
        """The services the port serves, through the stock reflection client (v1alpha)."""
        from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
            ProtoReflectionDescriptorDatabase,
        )
        return sorted(ProtoReflectionDescriptorDatabase(self.channel).get_services())

    def insert(self, volume_range, category=""):
        admin = self.pb["admin"]
        try:
            self.admin.InsertVolumes(admin.InsertVolumesRequest(range=volume_range, category=category))
        except grpc.RpcError as e:
            if reason_of(e) != "DUPLICATE_VOLSER":
                raise

    def write(self, volser, path):
        host = self.pb["host"]
        mount = self.host.Mount(host.MountRequest(volser=volser))

        def messages():
            yield host.WriteRequest(open=host.WriteOpen(mount_id=mount.mount_id))
            total = 0
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    total += len(chunk)
                    yield host.WriteRequest(chunk=chunk)
            yield host.WriteRequest(end=host.WriteEnd(total_bytes=total))

        self.host.Write(messages())
        return self.host.RewindUnload(host.RewindUnloadRequest(mount_id=mount.mount_id))

    def read(self, volser, path):
        host = self.pb["host"]
        mount = self.host.Mount(host.MountRequest(volser=volser))
        with open(path, "wb") as f:
            for chunk in self.host.Read(host.ReadRequest(mount_id=mount.mount_id)):
                f.write(chunk.data)
        self.host.RewindUnload(host.RewindUnloadRequest(mount_id=mount.mount_id))

    def events(self, count, from_sequence=1, timeout=30):
        """Follow events from a sequence number until `count` arrived (or the deadline)."""
        status = self.pb["status"]
        stream = self.status.WatchEvents(
            status.WatchEventsRequest(from_sequence=from_sequence), timeout=timeout)
        seen = []
        try:
            for event in stream:
                seen.append(event)
                if len(seen) == count:
                    stream.cancel()
                    break
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                raise
        return seen


def check(condition, what):
    if not condition:
        sys.exit(f"FAILED: {what}")
    print(f"ok: {what}")


def demo(client, pb, args):
    services = client.services()
    print("services:", ", ".join(services))
    check("vtgrid.v1.HostService" in services, "reflection v1alpha lists HostService")
    check(not any("GridService" in s for s in services), "no grid-internal service is listed")

    client.insert("P00000-P00009")
    data = os.urandom(3 * CHUNK + 123)
    with tempfile.TemporaryDirectory() as d:
        src, back = pathlib.Path(d) / "in.img", pathlib.Path(d) / "out.img"
        src.write_bytes(data)
        done = client.write("P00000", src)
        check(done.version >= 1 and done.size == len(data), f"wrote P00000 version {done.version}")
        client.read("P00000", back)
        check(back.read_bytes() == data, "read back the same bytes")
    volume = client.admin.GetVolume(pb["admin"].GetVolumeRequest(volser="P00000"))
    check(volume.digest == done.digest and len(volume.digest) == 64,
          "GetVolume (linearizable) has the unload's BLAKE3 digest")

    try:
        client.host.Mount(pb["host"].MountRequest(volser="bad!"))
        check(False, "a bad VOLSER is refused")
    except grpc.RpcError as e:
        check(reason_of(e) == "INVALID_VOLSER", "a bad VOLSER decodes to INVALID_VOLSER")

    admin = pb["admin"]
    for step in (admin.SERVICE_STEP_PREP, admin.SERVICE_STEP_EXIT):
        client.admin.SetServiceState(admin.SetServiceStateRequest(cluster=0, step=step))
    events = client.events(count=2, from_sequence=1)
    check(len(events) == 2, "two events followed from sequence 1")
    check([e.sequence for e in events] == [1, 2], "sequences 1 and 2, no gap")
    check(all(e.time.seconds > 1_600_000_000 for e in events), "events carry wall-clock time")
    again = client.events(count=1, from_sequence=2)
    check(again and again[0].sequence == 2, "resuming from sequence 2 starts there")

    if args.errors:
        decode_errors(args.errors, args.reasons.split(","))


def decode_errors(endpoint, reasons):
    """Each reason as a real server sends it, through the generic decoder."""
    channel = grpc.insecure_channel(endpoint)
    for reason in reasons:
        call = channel.unary_unary(f"/vtgrid.test.v1.Errors/{reason}")
        try:
            call(b"", timeout=10)
            sys.exit(f"FAILED: {reason}: the call succeeded")
        except grpc.RpcError as e:
            got = reason_of(e)
            if got != reason:
                sys.exit(f"FAILED: {reason}: rpc_status.from_call gave {got!r} ({e.code()})")
    print(f"ok: rpc_status.from_call decoded all {len(reasons)} reasons")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--endpoint", default="127.0.0.1:7400", help="host port of a cluster")
    ap.add_argument("--gen", help="where to generate the stubs (default: a temp dir)")
    ap.add_argument("--errors", help="(demo) endpoint that answers /vtgrid.test.v1.Errors/<REASON>")
    ap.add_argument("--reasons", default="", help="(demo) comma-separated reasons to decode there")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("services")
    w = sub.add_parser("write")
    w.add_argument("volser")
    w.add_argument("file")
    r = sub.add_parser("read")
    r.add_argument("volser")
    r.add_argument("file")
    e = sub.add_parser("events")
    e.add_argument("--count", type=int, default=10)
    e.add_argument("--from-sequence", type=int, default=1)
    sub.add_parser("demo")
    args = ap.parse_args()

    gen = pathlib.Path(args.gen) if args.gen else pathlib.Path(tempfile.mkdtemp(prefix="vtgrid-py-"))
    gen.mkdir(parents=True, exist_ok=True)
    pb = generate(gen)
    client = Client(args.endpoint, pb)
    if args.command == "services":
        print("\n".join(client.services()))
    elif args.command == "write":
        done = client.write(args.volser, args.file)
        print(f"{done.volser} version {done.version}, {done.size} bytes, blake3 {done.digest}")
    elif args.command == "read":
        client.read(args.volser, args.file)
    elif args.command == "events":
        for ev in client.events(args.count, args.from_sequence):
            print(ev.sequence, ev.time.ToJsonString(), f"C{ev.cluster}", ev.code, ev.message)
    elif args.command == "demo":
        demo(client, pb, args)
        print("demo: passed")


if __name__ == "__main__":
    main()
