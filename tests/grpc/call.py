"""One unary gRPC call with grpcio, from any .proto: the request and the
answer as JSON (protobuf's JSON mapping), for testing services `porto new
--grpc` made.

    python call.py INCLUDE_DIR FILE.proto TARGET package.Service/Method JSON

Prints {"ok": ANSWER} or {"code": "NOT_FOUND", "message": "..."}.
"""

import atexit
import importlib
import json
import shutil
import sys
import tempfile

import grpc
from google.protobuf import json_format, message_factory
from grpc_tools import protoc


def main():
    include, proto, target, method, body = sys.argv[1:6]
    out = tempfile.mkdtemp(prefix="porto-grpc-call-")
    atexit.register(shutil.rmtree, out, True)
    if protoc.main(["protoc", f"-I{include}", f"--python_out={out}", proto]) != 0:
        sys.exit("call.py: protoc failed")
    sys.path.insert(0, out)
    module = importlib.import_module(proto[: -len(".proto")].replace("/", ".") + "_pb2")
    service_name, method_name = method.split("/")
    service = module.DESCRIPTOR.services_by_name[service_name.rsplit(".", 1)[-1]]
    rpc = service.methods_by_name[method_name]
    request_type = message_factory.GetMessageClass(rpc.input_type)
    response_type = message_factory.GetMessageClass(rpc.output_type)
    call = grpc.insecure_channel(target).unary_unary(
        f"/{method}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_type.FromString,
    )
    try:
        answer = call(json_format.Parse(body, request_type()), timeout=10)
        print(json.dumps({"ok": json_format.MessageToDict(answer)}))
    except grpc.RpcError as error:
        print(json.dumps({"code": error.code().name, "message": error.details()}))


if __name__ == "__main__":
    main()
