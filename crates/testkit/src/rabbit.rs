//! The local RabbitMQ (`guest`/`guest` on 127.0.0.1:5672, managed with
//! `rabbitmqctl`): a throw-away vhost per test, and the broker's restart.

use std::process::{Command, Stdio};

/// Runs `rabbitmqctl -q args`; whether it succeeded.
pub fn rabbitmqctl(args: &[&str]) -> bool {
    Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A vhost `guest` may use, deleted on drop.
#[derive(Debug)]
pub struct Vhost(pub String);

impl Vhost {
    /// A fresh vhost for `test`, or `None` (after printing why) when
    /// RabbitMQ cannot be reached.
    ///
    /// # Panics
    /// Under `CI=true` when RabbitMQ cannot be reached.
    pub fn create(test: &str) -> Option<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!(
            "clinker-{test}-{:x}",
            nanos ^ u128::from(std::process::id())
        );
        let made = rabbitmqctl(&["add_vhost", &name])
            && rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        if !made {
            crate::env::unmet(
                test,
                "RabbitMQ is not reachable with rabbitmqctl",
                "scripts/ensure-services.sh",
            );
            return None;
        }
        Some(Self(name))
    }

    /// `transport_url` for this vhost.
    pub fn transport_url(&self) -> String {
        format!("rabbit://guest:guest@127.0.0.1:5672/{}", self.0)
    }
}

impl Vhost {
    /// A user of its own on this vhost with `password` (deleted on drop),
    /// for tests that must tell the broker's password apart from anything
    /// else in a log; `None` when rabbitmqctl refuses.
    pub fn user(&self, name: &str, password: &str) -> Option<VhostUser> {
        let user = format!("{}-{name}", self.0);
        let made = rabbitmqctl(&["add_user", &user, password])
            && rabbitmqctl(&["set_permissions", "-p", &self.0, &user, ".*", ".*", ".*"]);
        made.then(|| VhostUser {
            transport_url: format!("rabbit://{user}:{password}@127.0.0.1:5672/{}", self.0),
            user,
        })
    }
}

/// A broker user made by [`Vhost::user`], deleted on drop.
#[derive(Debug)]
pub struct VhostUser {
    /// The user's name.
    pub user: String,
    /// `transport_url` with the user's credentials.
    pub transport_url: String,
}

impl Drop for VhostUser {
    fn drop(&mut self) {
        rabbitmqctl(&["delete_user", &self.user]);
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        rabbitmqctl(&["delete_vhost", &self.0]);
    }
}
