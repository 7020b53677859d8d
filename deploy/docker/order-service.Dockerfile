# order-service: the component alone, nothing else in the image.
# Build the component first (from the repository root):
#   cargo build --release --target wasm32-wasip2 -p order-service --target-dir target
# then: docker buildx build --platform wasi/wasm -f deploy/docker/order-service.Dockerfile -t order-service .
FROM scratch
COPY target/wasm32-wasip2/release/order_service.wasm /order-service.wasm
ENTRYPOINT ["/order-service.wasm"]
