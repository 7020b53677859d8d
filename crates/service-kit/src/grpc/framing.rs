//! gRPC's message framing: each protobuf message behind a byte that says
//! whether it is compressed and its length as four big-endian bytes.
//!
//! Framing failures get the codes gRPC's status-code table gives them: a
//! frame cut short or a message that does not decode is `INTERNAL`, a
//! compressed message (porto's services accept none and say so in
//! `grpc-accept-encoding`) is `INTERNAL` too, a message over the limit is
//! `RESOURCE_EXHAUSTED`, and a unary half carrying no message or several
//! is `UNIMPLEMENTED` (a cardinality violation).

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;

use super::status::{Code, Status};

const PREFIX: usize = 5;

/// `message`, framed.
pub fn encode(message: &impl Message) -> Bytes {
    let length = message.encoded_len();
    let mut framed = BytesMut::with_capacity(PREFIX + length);
    framed.put_u8(0);
    // A message over 4 GiB cannot be built from a guest's memory.
    framed.put_u32(u32::try_from(length).unwrap_or(u32::MAX));
    message.encode_raw(&mut framed);
    framed.freeze()
}

/// The messages of a whole body, each still encoded.
pub fn split(mut body: &[u8], max_message: usize) -> Result<Vec<&[u8]>, Status> {
    let mut messages = Vec::new();
    while !body.is_empty() {
        let Some((prefix, rest)) = body.split_first_chunk::<PREFIX>() else {
            return Err(Status::internal(format!(
                "The body ends inside a message prefix ({} of 5 bytes).",
                body.len()
            )));
        };
        match prefix[0] {
            0 => {}
            1 => {
                return Err(Status::internal(
                    "The message is compressed; send it uncompressed (grpc-accept-encoding: identity).",
                ));
            }
            flag => {
                return Err(Status::internal(format!(
                    "The message prefix has flag {flag}; gRPC knows 0 and 1."
                )));
            }
        }
        let length = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        if length > max_message {
            return Err(Status::new(
                Code::ResourceExhausted,
                format!("The message is {length} bytes; at most {max_message} are accepted."),
            ));
        }
        let Some((message, rest)) = rest.split_at_checked(length) else {
            return Err(Status::internal(format!(
                "The body ends inside a message: {length} bytes declared, {} sent.",
                rest.len()
            )));
        };
        messages.push(message);
        body = rest;
    }
    Ok(messages)
}

/// The one message a unary request (or response) carries, decoded as `M`.
pub fn decode_one<M: Message + Default>(body: &[u8], max_message: usize) -> Result<M, Status> {
    match split(body, max_message)?.as_slice() {
        [message] => decode(message),
        none_or_many => Err(Status::unimplemented(format!(
            "Expected exactly one {} message, got {}.",
            short_name::<M>(),
            none_or_many.len()
        ))),
    }
}

/// Every message of a streamed body, decoded as `M`.
pub fn decode_all<M: Message + Default>(body: &[u8], max_message: usize) -> Result<Vec<M>, Status> {
    split(body, max_message)?.into_iter().map(decode).collect()
}

fn decode<M: Message + Default>(message: &[u8]) -> Result<M, Status> {
    M::decode(message).map_err(|error| {
        Status::internal(format!(
            "The message is not a valid {}: {error}.",
            short_name::<M>()
        ))
    })
}

/// The generated type's name without its module path, as the `.proto`
/// spells it.
fn short_name<M>() -> &'static str {
    let full = std::any::type_name::<M>();
    full.rsplit("::").next().unwrap_or(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::health::HealthCheckRequest;

    fn request(service: &str) -> HealthCheckRequest {
        HealthCheckRequest {
            service: service.to_string(),
        }
    }

    #[test]
    fn a_framed_message_decodes_back() {
        let framed = encode(&request("users.v1.Users"));
        assert_eq!(framed[0], 0);
        assert_eq!(
            decode_one::<HealthCheckRequest>(&framed, 1024),
            Ok(request("users.v1.Users"))
        );
        let mut two = framed.to_vec();
        two.extend_from_slice(&encode(&request("")));
        assert_eq!(
            decode_all::<HealthCheckRequest>(&two, 1024),
            Ok(vec![request("users.v1.Users"), request("")])
        );
        assert_eq!(
            decode_one::<HealthCheckRequest>(&[], 1024).map_err(|s| s.code),
            Err(Code::Unimplemented)
        );
        assert_eq!(
            decode_one::<HealthCheckRequest>(&two, 1024).map_err(|s| s.code),
            Err(Code::Unimplemented)
        );
    }

    #[test]
    fn bad_frames_get_the_codes_of_grpc_s_table() {
        let framed = encode(&request("users.v1.Users"));
        let code =
            |body: &[u8], max| decode_one::<HealthCheckRequest>(body, max).map_err(|s| s.code);
        assert_eq!(
            code(&framed[..3], 1024),
            Err(Code::Internal),
            "cut in the prefix"
        );
        assert_eq!(
            code(&framed[..framed.len() - 1], 1024),
            Err(Code::Internal),
            "cut in the message"
        );
        let mut compressed = framed.to_vec();
        compressed[0] = 1;
        assert_eq!(code(&compressed, 1024), Err(Code::Internal));
        assert_eq!(code(&framed, 4), Err(Code::ResourceExhausted));
        assert_eq!(
            code(&[0, 0, 0, 0, 2, 0xff, 0xff], 1024),
            Err(Code::Internal),
            "not protobuf"
        );
        let mut huge = vec![0, 0xff, 0xff, 0xff, 0xff];
        huge.extend_from_slice(b"short");
        assert_eq!(code(&huge, usize::MAX), Err(Code::Internal));
    }
}
