"""Calls every users.v1.Users method and the health service with grpcio,
a gRPC client no one here wrote, and prints what each call got as one JSON
object for the end-to-end test to check (tests/e2e/grpc.rs).

    python walk.py TARGET [--ca FILE] [--key API_KEY]

TARGET is host:port. With --ca the channel is TLS (HTTP/2 by ALPN) and
trusts that CA; without it, h2c with prior knowledge. The stubs
of users.v1 are generated from the repository's .proto file into a
temporary directory, so they always match it; the health service's are
grpcio-health-checking's own.
"""

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
import uuid

import grpc
from google.protobuf import json_format
from google.protobuf import message as protobuf_message
from grpc_tools import protoc

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
PROTO = os.path.join(ROOT, "proto")


def stubs():
    out = tempfile.mkdtemp(prefix="porto-grpc-stubs-")
    atexit.register(shutil.rmtree, out, True)
    args = ["protoc", f"-I{PROTO}", f"--python_out={out}", f"--grpc_python_out={out}"]
    if protoc.main(args + ["users/v1/users.proto"]) != 0:
        sys.exit("walk.py: protoc failed")
    sys.path.insert(0, out)
    from users.v1 import users_pb2, users_pb2_grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    return users_pb2, users_pb2_grpc, health_pb2, health_pb2_grpc


def outcome(call):
    """The call's answer, or its status code and message."""
    try:
        answer = call()
    except grpc.RpcError as error:
        return {"code": error.code().name, "message": error.details()}
    # A call expected to fail that answers anyway must still print.
    if isinstance(answer, protobuf_message.Message):
        answer = json_format.MessageToDict(answer, preserving_proto_field_name=True)
    elif isinstance(answer, bytes):
        answer = {"bytes": answer.hex()}
    return {"ok": answer}


def user(message):
    return {
        "id": message.id,
        "name": message.name,
        "email": message.email,
        "created_at": message.created_at,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("--ca")
    parser.add_argument("--key")
    options = parser.parse_args()

    users_pb2, users_grpc, health_pb2, health_grpc = stubs()
    if options.ca:
        with open(options.ca, "rb") as ca:
            credentials = grpc.ssl_channel_credentials(root_certificates=ca.read())
        channel = grpc.secure_channel(options.target, credentials)
    else:
        channel = grpc.insecure_channel(options.target)
    users = users_grpc.UsersStub(channel)
    health = health_grpc.HealthStub(channel)
    metadata = [("authorization", f"Bearer {options.key}")] if options.key else []
    email = f"grpc-{uuid.uuid4().hex[:12]}@Example.com"
    raw = lambda method: channel.unary_unary(method)  # bytes in, bytes out

    result = {
        "get": outcome(lambda: user(users.GetUser(users_pb2.GetUserRequest(id=1), timeout=10))),
        "missing": outcome(lambda: users.GetUser(users_pb2.GetUserRequest(id=987654321), timeout=10)),
        "zero_id": outcome(lambda: users.GetUser(users_pb2.GetUserRequest(id=0), timeout=10)),
        "create": outcome(
            lambda: user(
                users.CreateUser(
                    users_pb2.CreateUserRequest(name="  Grace Hopper ", email=email),
                    metadata=metadata,
                    timeout=10,
                )
            )
        ),
        "taken": outcome(
            lambda: users.CreateUser(
                users_pb2.CreateUserRequest(name="Someone Else", email=email.lower()),
                metadata=metadata,
                timeout=10,
            )
        ),
        "invalid": outcome(
            lambda: users.CreateUser(
                users_pb2.CreateUserRequest(name=" ", email="not-an-email"),
                metadata=metadata,
                timeout=10,
            )
        ),
        "no_key": outcome(
            lambda: users.CreateUser(
                users_pb2.CreateUserRequest(name="Keyless", email=f"k{email}"), timeout=10
            )
        ),
        "list": outcome(
            lambda: [user(u) for u in users.ListUsers(users_pb2.ListUsersRequest(), timeout=10)]
        ),
        "list_two_after_one": outcome(
            lambda: [
                user(u)
                for u in users.ListUsers(users_pb2.ListUsersRequest(after_id=1, limit=2), timeout=10)
            ]
        ),
        "health": outcome(
            lambda: health_pb2.HealthCheckResponse.ServingStatus.Name(
                health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
            )
        ),
        "health_users": outcome(
            lambda: health_pb2.HealthCheckResponse.ServingStatus.Name(
                health.Check(health_pb2.HealthCheckRequest(service="users.v1.Users"), timeout=10).status
            )
        ),
        "health_unknown": outcome(
            lambda: health.Check(health_pb2.HealthCheckRequest(service="nope.v1.Nope"), timeout=10)
        ),
        "not_protobuf": outcome(lambda: raw("/users.v1.Users/GetUser")(b"\xff\xff\xff", timeout=10)),
        "oversized": outcome(
            lambda: raw("/users.v1.Users/CreateUser")(
                users_pb2.CreateUserRequest(name="x" * 70_000, email=email).SerializeToString(),
                metadata=metadata,
                timeout=10,
            )
        ),
        "unknown_method": outcome(lambda: raw("/users.v1.Users/DeleteEverything")(b"", metadata=metadata, timeout=10)),
        "unknown_method_no_key": outcome(lambda: raw("/users.v1.Users/DeleteEverything")(b"", timeout=10)),
        "unknown_service": outcome(lambda: raw("/shop.v1.Carts/Get")(b"", timeout=10)),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
