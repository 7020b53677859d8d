// A build script makes cargo apply the `[build-dependencies]` above.
fn main() {}
