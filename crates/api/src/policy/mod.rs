//! Policy: whether a caller may perform an action (Cinder's
//! `cinder/policy.py` over oslo.policy, with the rules of
//! `cinder/policies/*.py`).
//!
//! Every handler asks [`enforce`] with Cinder's rule name (`volume:create`,
//! `volume_extension:volume_admin_actions:reset_status`, …) and, when the
//! action targets one resource, that resource's project. The rules are
//! Cinder's defaults ([`defaults::DEFAULT_RULES`]: `admin` everywhere, a
//! `member` acts in its own project, a `reader` reads its own project),
//! overridden by the operator's `policy.yaml`/`policy.json` in oslo.policy
//! syntax, which is parsed once at start-up ([`Policy::from_config`]): a
//! rule that does not parse stops start-up naming it.
//!
//! The request pipeline runs each request inside [`Policy::scope`], so
//! [`enforce`] finds the policy of the router serving the request without
//! handlers passing it along. Outside a request (unit tests of services)
//! the built-in defaults apply. Project isolation itself (another project's
//! resources are *not found*) is done by the services' scoped look-ups;
//! policy decides what a caller may do inside what it can see.

pub mod check;
pub mod defaults;
pub mod file;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use clinker_rpc::RequestContext;

use self::check::{Check, literal_kind, substitute};
use crate::fault::{ApiError, ApiResult};

/// The rule a caller's `is_admin` comes from (oslo's `check_is_admin`).
pub const CONTEXT_IS_ADMIN: &str = "context_is_admin";

/// How deep `rule:` references may nest before evaluation gives up (the
/// load-time cycle check makes this a safety net only).
const MAX_RULE_DEPTH: usize = 32;

/// Why a policy cannot be used; start-up stops with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The policy file cannot be read.
    #[error("cannot read policy file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O or syntax error.
        reason: String,
    },
    /// A rule's check string does not parse.
    #[error("policy rule {rule:?} in {origin} is invalid: {reason}")]
    Rule {
        /// The rule name.
        rule: String,
        /// Where it came from (a file, or the built-in defaults).
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// Rules refer to each other in a cycle.
    #[error("policy rule {rule:?} refers to itself through rule: checks")]
    Cycle {
        /// A rule on the cycle.
        rule: String,
    },
    /// The configuration names a policy file that cannot be found.
    #[error("{0}")]
    Config(String),
}

/// What an action is performed on: the values `%(key)s` in check strings
/// refer to. `project_id` and `user_id` default to the caller's, as in
/// Cinder's `RequestContext.authorize`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target(BTreeMap<String, String>);

impl Target {
    /// A resource of `project_id`.
    pub fn project(project_id: impl Into<String>) -> Self {
        let mut target = Self::default();
        target.0.insert("project_id".into(), project_id.into());
        target
    }

    /// Adds or replaces a key.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(key.into(), value.into());
        self
    }

    fn resolved(&self, ctx: &RequestContext) -> BTreeMap<String, String> {
        let mut values = self.0.clone();
        values
            .entry("project_id".into())
            .or_insert_with(|| ctx.project_id.clone());
        values
            .entry("user_id".into())
            .or_insert_with(|| ctx.user_id.clone());
        values
    }
}

/// A set of parsed rules: Cinder's defaults with the operator's overrides.
#[derive(Clone, Debug)]
pub struct Policy {
    rules: HashMap<String, Check>,
    source: Option<PathBuf>,
}

static DEFAULTS: LazyLock<Arc<Policy>> = LazyLock::new(|| {
    // The defaults are checked by this module's tests, so parsing cannot
    // fail here; an empty rule set (deny everything but `@`) is the safe
    // fallback regardless.
    Arc::new(
        Policy::with_overrides(&[], "<defaults>").unwrap_or_else(|err| {
            tracing::error!(error = %err, "built-in policy defaults do not parse");
            Policy {
                rules: HashMap::new(),
                source: None,
            }
        }),
    )
});

tokio::task_local! {
    static ACTIVE: Arc<Policy>;
}

impl Policy {
    /// Cinder's defaults.
    pub fn defaults() -> Arc<Policy> {
        DEFAULTS.clone()
    }

    /// The defaults with `overrides` (rule name, check string) applied;
    /// `origin` names where the overrides came from in errors.
    ///
    /// # Errors
    /// A check string that does not parse, or a `rule:` cycle.
    pub fn with_overrides(
        overrides: &[(String, String)],
        origin: &str,
    ) -> Result<Self, PolicyError> {
        let mut rules = HashMap::new();
        for (name, text) in defaults::DEFAULT_RULES {
            let parsed = check::parse(text).map_err(|e| PolicyError::Rule {
                rule: (*name).to_owned(),
                origin: "the built-in defaults".to_owned(),
                reason: e.0,
            })?;
            rules.insert((*name).to_owned(), parsed);
        }
        for (name, text) in overrides {
            let parsed = check::parse(text).map_err(|e| PolicyError::Rule {
                rule: name.clone(),
                origin: origin.to_owned(),
                reason: e.0,
            })?;
            rules.insert(name.clone(), parsed);
        }
        let policy = Policy {
            rules,
            source: None,
        };
        policy.check_cycles()?;
        Ok(policy)
    }

    /// The defaults overridden by a policy file.
    ///
    /// # Errors
    /// An unreadable file, a syntax error, a bad rule.
    pub fn load_file(path: &Path) -> Result<Self, PolicyError> {
        let read_error = |reason: String| PolicyError::Read {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))?;
        let rules = file::parse_policy_text(&text).map_err(|e| read_error(e.to_string()))?;
        let mut policy = Self::with_overrides(&rules, &path.display().to_string())?;
        policy.source = Some(path.to_path_buf());
        Ok(policy)
    }

    /// The policy `[oslo_policy] policy_file` asks for: the defaults when
    /// the default `policy.yaml` does not exist next to the configuration.
    ///
    /// # Errors
    /// See [`PolicyError`].
    pub fn from_config(config: &clinker_config::Config) -> Result<Arc<Self>, PolicyError> {
        match config
            .auth
            .oslo_policy
            .resolve()
            .map_err(|e| PolicyError::Config(e.to_string()))?
        {
            Some(path) => Ok(Arc::new(Self::load_file(&path)?)),
            None => Ok(Self::defaults()),
        }
    }

    /// A policy that refuses everything (for a router whose policy file
    /// could not be loaded: refusing is the safe failure).
    pub fn deny_all() -> Arc<Self> {
        let rules = defaults::DEFAULT_RULES
            .iter()
            .map(|(name, _)| ((*name).to_owned(), Check::Never))
            .collect();
        Arc::new(Policy {
            rules,
            source: None,
        })
    }

    /// The file the overrides came from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// Runs `future` (one request) with this policy as the one [`enforce`]
    /// uses.
    pub async fn scope<F: Future>(self: Arc<Self>, future: F) -> F::Output {
        ACTIVE.scope(self, future).await
    }

    fn check_cycles(&self) -> Result<(), PolicyError> {
        // Depth-first search over rule references; 1 = on the stack,
        // 2 = done.
        fn visit<'a>(
            policy: &'a Policy,
            name: &'a str,
            state: &mut HashMap<&'a str, u8>,
        ) -> Result<(), PolicyError> {
            match state.get(name) {
                Some(1) => {
                    return Err(PolicyError::Cycle {
                        rule: name.to_owned(),
                    });
                }
                Some(_) => return Ok(()),
                None => {}
            }
            let Some(check) = policy.rules.get(name) else {
                return Ok(());
            };
            state.insert(name, 1);
            let mut referenced = Vec::new();
            check.referenced_rules(&mut referenced);
            for next in referenced {
                visit(policy, next, state)?;
            }
            state.insert(name, 2);
            Ok(())
        }
        let mut state = HashMap::new();
        let mut names: Vec<&str> = self.rules.keys().map(String::as_str).collect();
        names.sort_unstable();
        for name in names {
            visit(self, name, &mut state)?;
        }
        Ok(())
    }

    /// Whether `rule` allows `ctx` on `target`. A rule nobody defined is
    /// treated as `rule:admin_api` (and logged): refusing non-admins is the
    /// safe answer to a misspelt rule name.
    pub fn allows(&self, ctx: &RequestContext, rule: &str, target: &Target) -> bool {
        let target = target.resolved(ctx);
        match self.rules.get(rule) {
            Some(check) => self.evaluate(check, ctx, &target, 0),
            None => {
                tracing::warn!(rule, "policy rule is not registered; applying admin_api");
                self.evaluate(&Check::Rule("admin_api".into()), ctx, &target, 0)
            }
        }
    }

    /// oslo's `check_is_admin`: the `context_is_admin` rule with the
    /// caller's own credentials as the target.
    pub fn is_admin(&self, ctx: &RequestContext) -> bool {
        self.rules
            .get(CONTEXT_IS_ADMIN)
            .is_some_and(|check| self.evaluate(check, ctx, &Target::default().resolved(ctx), 0))
    }

    fn evaluate(
        &self,
        check: &Check,
        ctx: &RequestContext,
        target: &BTreeMap<String, String>,
        depth: usize,
    ) -> bool {
        match check {
            Check::Always => true,
            Check::Never => false,
            Check::Rule(name) => {
                depth < MAX_RULE_DEPTH
                    && self
                        .rules
                        .get(name)
                        .is_some_and(|c| self.evaluate(c, ctx, target, depth + 1))
            }
            Check::Role(matcher) => substitute(matcher, target)
                .is_some_and(|wanted| ctx.roles.iter().any(|r| r.eq_ignore_ascii_case(&wanted))),
            Check::Generic { kind, matcher } => {
                let Some(wanted) = substitute(matcher, target) else {
                    return false;
                };
                match literal_kind(kind) {
                    Some(literal) => literal == wanted,
                    None => credential(ctx, kind).contains(&wanted),
                }
            }
            Check::Not(inner) => !self.evaluate(inner, ctx, target, depth),
            Check::And(all) => all.iter().all(|c| self.evaluate(c, ctx, target, depth)),
            Check::Or(any) => any.iter().any(|c| self.evaluate(c, ctx, target, depth)),
        }
    }
}

fn python_bool(value: bool) -> String {
    if value { "True" } else { "False" }.to_owned()
}

/// oslo.context's `to_policy_values` for the credentials Clinker knows.
fn credential(ctx: &RequestContext, kind: &str) -> Vec<String> {
    match kind {
        "user_id" => vec![ctx.user_id.clone()],
        "project_id" => vec![ctx.project_id.clone()],
        "roles" => ctx.roles.clone(),
        "is_admin" => vec![python_bool(ctx.is_admin)],
        // keystonemiddleware reports True unless Keystone names an admin
        // project, which Clinker does not model.
        "is_admin_project" => vec![python_bool(true)],
        "project_domain_id" => ctx.project_domain_id.iter().cloned().collect(),
        "service_roles" => ctx.service_roles.clone(),
        _ => Vec::new(),
    }
}

/// The policy of the request being served (the defaults outside one).
pub fn current() -> Arc<Policy> {
    ACTIVE
        .try_with(Arc::clone)
        .unwrap_or_else(|_| Policy::defaults())
}

fn refused(rule: &str) -> ApiError {
    ApiError::forbidden(format!("Policy doesn't allow {rule} to be performed."))
}

/// Allows or refuses `rule` for `ctx` on a resource of `target_project_id`
/// (`None`: the caller's own project, Cinder's default target).
///
/// # Errors
/// 403 `forbidden` with Cinder's text "Policy doesn't allow `<rule>` to be
/// performed.".
pub fn enforce(ctx: &RequestContext, rule: &str, target_project_id: Option<&str>) -> ApiResult<()> {
    let target = target_project_id.map(Target::project).unwrap_or_default();
    enforce_target(ctx, rule, &target)
}

/// [`enforce`] with a full target (`%(key)s` values besides the project).
///
/// # Errors
/// 403 `forbidden`.
pub fn enforce_target(ctx: &RequestContext, rule: &str, target: &Target) -> ApiResult<()> {
    if current().allows(ctx, rule, target) {
        Ok(())
    } else {
        Err(refused(rule))
    }
}

/// Cinder's `authorize(..., fatal=False)`: whether `rule` allows `ctx`.
pub fn allowed(ctx: &RequestContext, rule: &str, target_project_id: Option<&str>) -> bool {
    let target = target_project_id.map(Target::project).unwrap_or_default();
    current().allows(ctx, rule, &target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(project: &str, roles: &[&str]) -> RequestContext {
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        let mut ctx = RequestContext {
            project_id: project.into(),
            user_id: "u1".into(),
            roles,
            ..Default::default()
        };
        ctx.is_admin = Policy::defaults().is_admin(&ctx);
        ctx
    }

    #[test]
    fn every_default_parses_and_every_named_rule_exists() {
        let policy = Policy::with_overrides(&[], "test").unwrap();
        // Rules other engineers' handlers enforce.
        for rule in [
            "volume:attachment_create",
            "volume:attachment_update",
            "volume:attachment_delete",
            "volume:attachment_get",
            "volume:attachment_get_all",
            "volume:attachment_complete",
            "volume_extension:qos_specs_manage:get_all",
            "volume_extension:qos_specs_manage:create",
            "volume:create_transfer",
            "volume:accept_transfer",
            "volume:get_transfer",
            "volume:get_all_transfers",
            "volume:delete_transfer",
            "volume_extension:volume_type_encryption:create",
            "group:create",
            "group:group_types:create",
            "group:create_group_snapshot",
            "message:get",
            "message:get_all",
            "message:delete",
        ] {
            assert!(policy.rules.contains_key(rule), "{rule} has no default");
        }
    }

    #[test]
    fn personas_follow_cinders_defaults() {
        let admin = ctx("p1", &["admin", "member", "reader"]);
        let member = ctx("p1", &["member", "reader"]);
        let reader = ctx("p1", &["reader"]);
        let nobody = ctx("p1", &[]);
        assert!(admin.is_admin && !member.is_admin);
        let policy = Policy::defaults();
        let own = Target::project("p1");
        let other = Target::project("p2");
        for (who, get, create, reset) in [
            (&admin, true, true, true),
            (&member, true, true, false),
            (&reader, true, false, false),
            (&nobody, false, false, false),
        ] {
            assert_eq!(
                policy.allows(who, "volume:get", &own),
                get,
                "{:?}",
                who.roles
            );
            assert_eq!(policy.allows(who, "volume:create", &own), create);
            assert_eq!(
                policy.allows(
                    who,
                    "volume_extension:volume_admin_actions:reset_status",
                    &own
                ),
                reset
            );
        }
        // Members and readers act in their own project only; admins anywhere.
        assert!(!policy.allows(&member, "volume:delete", &other));
        assert!(!policy.allows(&reader, "volume_extension:quotas:show", &other));
        assert!(policy.allows(&admin, "volume:delete", &other));
        // A rule nobody registered is admin-only.
        assert!(!policy.allows(&member, "volume:frobnicate", &own));
        assert!(policy.allows(&admin, "volume:frobnicate", &own));
    }

    #[test]
    fn overrides_replace_rules_and_base_rules() {
        let overrides = vec![
            ("volume:create".to_owned(), "role:admin".to_owned()),
            (
                "volume:get_all".to_owned(),
                "not role:reader or role:member".to_owned(),
            ),
            ("context_is_admin".to_owned(), "role:superuser".to_owned()),
            (
                "volume:delete".to_owned(),
                "user_id:%(user_id)s and 'p1':%(project_id)s".to_owned(),
            ),
        ];
        let policy = Policy::with_overrides(&overrides, "test").unwrap();
        let member = ctx("p1", &["member", "reader"]);
        let reader = ctx("p1", &["reader"]);
        assert!(!policy.allows(&member, "volume:create", &Target::default()));
        assert!(!policy.allows(&reader, "volume:get_all", &Target::default()));
        assert!(policy.allows(&member, "volume:get_all", &Target::default()));
        assert!(!policy.is_admin(&ctx("p1", &["admin"])));
        assert!(policy.is_admin(&ctx("p1", &["SuperUser"])));
        assert!(policy.allows(&reader, "volume:delete", &Target::default()));
        assert!(!policy.allows(&reader, "volume:delete", &Target::project("p2")));
        assert!(!policy.allows(
            &reader,
            "volume:delete",
            &Target::project("p1").with("user_id", "someone-else")
        ));
    }

    #[test]
    fn bad_rules_and_cycles_are_named() {
        let err = Policy::with_overrides(
            &[("volume:create".to_owned(), "role:admin or".to_owned())],
            "policy.yaml",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("volume:create") && text.contains("policy.yaml"),
            "{text}"
        );
        let err = Policy::with_overrides(
            &[
                ("a".to_owned(), "rule:b".to_owned()),
                ("b".to_owned(), "role:x or rule:a".to_owned()),
            ],
            "policy.yaml",
        )
        .unwrap_err();
        assert!(matches!(err, PolicyError::Cycle { .. }), "{err}");
    }

    #[tokio::test]
    async fn enforce_uses_the_scoped_policy() {
        let member = ctx("p1", &["member", "reader"]);
        assert!(enforce(&member, "volume:create", None).is_ok());
        let strict = Arc::new(
            Policy::with_overrides(&[("volume:create".into(), "!".into())], "test").unwrap(),
        );
        let err = strict
            .scope(async { enforce(&member, "volume:create", None) })
            .await
            .unwrap_err();
        assert_eq!(
            err.user_message(),
            "Policy doesn't allow volume:create to be performed."
        );
        assert!(!Policy::deny_all().allows(&member, "volume:get", &Target::default()));
    }
}
