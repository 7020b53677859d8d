// The client half of user-service's gRPC contract.
fn main() {
    service_kit_build::protos(&["users/v1/users.proto"], "../../proto");
}
