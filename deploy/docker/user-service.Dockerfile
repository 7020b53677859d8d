# user-service: the component alone, nothing else in the image.
# Build the component first (from the repository root):
#   cargo build --release --target wasm32-wasip2 -p user-service --target-dir target
# then: docker buildx build --platform wasi/wasm -f deploy/docker/user-service.Dockerfile -t user-service .
FROM scratch
COPY target/wasm32-wasip2/release/user_service.wasm /user-service.wasm
ENTRYPOINT ["/user-service.wasm"]
