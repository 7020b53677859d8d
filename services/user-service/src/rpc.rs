//! user-service's gRPC API, `users.v1.Users` (proto/users/v1/users.proto),
//! beside REST on the same store and the same rules: each method is the
//! REST route's code with messages for JSON, so both APIs fail alike.

use service_kit::grpc::{Call, Failure, Reply, health};
use service_kit::pagination::{MAX_LIMIT, PageRequest};
use service_kit::routing::parse_id;

use crate::domain::{self, CreateUser};
use crate::store::Users;

#[allow(clippy::all, missing_docs)]
pub mod users_v1 {
    include!(concat!(env!("OUT_DIR"), "/users.v1.rs"));
}

use users_v1::{CreateUserRequest, GetUserRequest, ListUsersRequest, User};

/// The service's name, as calls address it.
pub const USERS: &str = "users.v1.Users";

pub async fn serve(call: Call) -> Result<Reply, Failure> {
    match (call.service.as_str(), call.method.as_str()) {
        (USERS, "GetUser") => {
            let asked: GetUserRequest = call.message()?;
            let id = parse_id(&asked.id.to_string(), "user")?;
            Ok(Reply::unary(&message(Users::open().await?.get(id)?)))
        }
        (USERS, "CreateUser") => {
            let asked: CreateUserRequest = call.message()?;
            let valid = CreateUser {
                name: asked.name,
                email: asked.email,
            }
            .validate()?;
            Ok(Reply::unary(&message(Users::open().await?.create(valid)?)))
        }
        (USERS, "ListUsers") => {
            let asked: ListUsersRequest = call.message()?;
            let limit = usize::try_from(asked.limit).ok().filter(|n| *n > 0);
            Ok(Reply::stream(Listing {
                users: Users::open().await?,
                after: Some(asked.after_id),
                left: limit,
                page: Vec::new().into_iter(),
            }))
        }
        (health::SERVICE, _) => {
            let users = Users::open().await;
            health::serve(&call, &[USERS], || users?.healthy())
        }
        _ => Err(call.unimplemented()),
    }
}

fn message(user: domain::User) -> User {
    User {
        id: user.id,
        name: user.name,
        email: user.email,
        created_at: user.created_at,
    }
}

/// ListUsers' stream: the store read a page at a time as the body is
/// written, so a long listing is never held whole.
struct Listing {
    users: Users,
    /// Where the next page starts; `None` once the store has no more.
    after: Option<u64>,
    /// How many the caller still wants; `None` for all.
    left: Option<usize>,
    page: std::vec::IntoIter<domain::User>,
}

impl Iterator for Listing {
    type Item = Result<User, Failure>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == Some(0) {
            return None;
        }
        if self.page.len() == 0 {
            let after = self.after?;
            let limit = self.left.map_or(MAX_LIMIT, |left| left.min(MAX_LIMIT));
            match self.users.list(PageRequest { after, limit }) {
                Ok((users, last)) => {
                    self.after = last;
                    self.page = users.into_iter();
                }
                Err(error) => {
                    self.after = None;
                    self.left = Some(0);
                    return Some(Err(error.into()));
                }
            }
        }
        let user = self.page.next()?;
        if let Some(left) = self.left.as_mut() {
            *left -= 1;
        }
        Some(Ok(message(user)))
    }
}
