fn main() {
    service_kit_build::protos(&["grpc/health/v1/health.proto"], "../../proto");
}
