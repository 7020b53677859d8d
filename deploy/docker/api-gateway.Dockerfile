# api-gateway: the component alone, nothing else in the image.
# Build the component first (from the repository root):
#   cargo build --release --target wasm32-wasip2 -p api-gateway --target-dir target
# then: docker buildx build --platform wasi/wasm -f deploy/docker/api-gateway.Dockerfile -t api-gateway .
FROM scratch
COPY target/wasm32-wasip2/release/api_gateway.wasm /api-gateway.wasm
ENTRYPOINT ["/api-gateway.wasm"]
