//! Amazon Resource Names: the generic six-part form and the IAM principal forms STS reports.

use std::fmt;

/// A parsed ARN: `arn:<partition>:<service>:<region>:<account>:<resource>`.
///
/// Region and account may be empty (IAM ARNs have no region); the resource keeps any further `:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn {
    /// `aws`, `aws-cn`, `aws-us-gov`, …
    pub partition: String,
    /// `ecs`, `iam`, `sts`, …
    pub service: String,
    /// The region, empty for global services.
    pub region: String,
    /// The 12-digit account ID, possibly empty.
    pub account: String,
    /// Everything after the fifth `:`, such as `task/my-cluster/0123abcd`.
    pub resource: String,
}

/// Why a string is not an ARN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    /// The text does not start with `arn:`.
    #[error("{0:?} is not an ARN: it does not start with \"arn:\"")]
    Prefix(String),
    /// Fewer than six `:`-separated sections.
    #[error("{0:?} is not an ARN: expected 6 sections separated by ':'")]
    Sections(String),
    /// A section that may not be empty is.
    #[error("{arn:?} is not an ARN: the {section} is empty")]
    Empty {
        /// The text.
        arn: String,
        /// `partition`, `service` or `resource`.
        section: &'static str,
    },
    /// The ARN does not name an IAM role, assumed role or user.
    #[error("{arn:?} does not name an IAM role, assumed role or user")]
    NotIamPrincipal {
        /// The text.
        arn: String,
    },
}

impl Arn {
    /// Parses an ARN. Never panics.
    pub fn parse(text: &str) -> Result<Self, ArnError> {
        let rest = text
            .strip_prefix("arn:")
            .ok_or_else(|| ArnError::Prefix(text.to_owned()))?;
        let mut parts = rest.splitn(5, ':');
        let mut next = || {
            parts
                .next()
                .ok_or_else(|| ArnError::Sections(text.to_owned()))
        };
        let partition = next()?;
        let service = next()?;
        let region = next()?;
        let account = next()?;
        let resource = next()?;
        for (section, value) in [
            ("partition", partition),
            ("service", service),
            ("resource", resource),
        ] {
            if value.is_empty() {
                return Err(ArnError::Empty {
                    arn: text.to_owned(),
                    section,
                });
            }
        }
        Ok(Self {
            partition: partition.to_owned(),
            service: service.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            resource: resource.to_owned(),
        })
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account, self.resource
        )
    }
}

/// The kind of IAM principal an ARN names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// `arn:…:iam::<acct>:role/<path>/<name>`.
    Role,
    /// `arn:…:sts::<acct>:assumed-role/<role name>/<session>`.
    AssumedRole,
    /// `arn:…:iam::<acct>:user/<path>/<name>`.
    User,
}

/// An IAM role, assumed-role session or user, as named by an ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamPrincipal {
    /// The partition, such as `aws`.
    pub partition: String,
    /// The account ID.
    pub account: String,
    /// Role, assumed role or user.
    pub kind: PrincipalKind,
    /// The path between the type and the name without its outer slashes (`""` for the root path).
    /// Always empty for an assumed role, whose ARN does not carry the role's path.
    pub path: String,
    /// The role or user name. For an assumed role this is the role's name, not the session's.
    pub name: String,
    /// The session name of an assumed role.
    pub session: Option<String>,
}

impl IamPrincipal {
    /// Parses the ARN of an IAM role, assumed role or user (for example the `Arn` that
    /// `sts:GetCallerIdentity` returns).
    pub fn parse(text: &str) -> Result<Self, ArnError> {
        let arn = Arn::parse(text)?;
        let not_principal = || ArnError::NotIamPrincipal {
            arn: text.to_owned(),
        };
        let segments: Vec<&str> = arn.resource.split('/').collect();
        let (kind, rest) = match segments.split_first() {
            Some((&"role", rest)) if arn.service == "iam" => (PrincipalKind::Role, rest),
            Some((&"user", rest)) if arn.service == "iam" => (PrincipalKind::User, rest),
            Some((&"assumed-role", rest)) if arn.service == "sts" => {
                (PrincipalKind::AssumedRole, rest)
            }
            _ => return Err(not_principal()),
        };
        let (name, path, session) = match kind {
            PrincipalKind::AssumedRole => match rest {
                [role, session @ ..] if !role.is_empty() && !session.is_empty() => {
                    (*role, String::new(), Some(session.join("/")))
                }
                _ => return Err(not_principal()),
            },
            PrincipalKind::Role | PrincipalKind::User => match rest.split_last() {
                Some((name, path)) if !name.is_empty() => (*name, path.join("/"), None),
                _ => return Err(not_principal()),
            },
        };
        Ok(Self {
            partition: arn.partition,
            account: arn.account,
            kind,
            path,
            name: name.to_owned(),
            session,
        })
    }
}
