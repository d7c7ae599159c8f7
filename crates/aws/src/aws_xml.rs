//! Just enough XML to read the STS and IAM query API responses consul-ecs needs:
//! `GetCallerIdentity`, `GetRole`/`GetUser` (with tags) and `ErrorResponse`.
//!
//! These documents are small, flat and machine-written, so a tag scanner that never panics is
//! enough; it does not try to be a general XML parser.

use std::collections::BTreeMap;

/// The result of `sts:GetCallerIdentity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The caller's ARN (for a role session `arn:aws:sts::<acct>:assumed-role/<role>/<session>`).
    pub arn: String,
    /// The caller's unique ID.
    pub user_id: String,
    /// The caller's account.
    pub account: String,
}

/// The IAM role or user returned by `iam:GetRole`/`iam:GetUser`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamEntity {
    /// The role's or user's ARN.
    pub arn: String,
    /// `RoleName` or `UserName`.
    pub name: String,
    /// `RoleId` or `UserId`.
    pub id: String,
    /// The IAM path, such as `/consul-ecs/`.
    pub path: String,
    /// The entity's tags.
    pub tags: BTreeMap<String, String>,
}

/// An AWS query API error (`<ErrorResponse><Error>…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    /// `Sender` or `Receiver`.
    pub kind: String,
    /// Such as `SignatureDoesNotMatch` or `AccessDenied`.
    pub code: String,
    /// The human-readable message.
    pub message: String,
}

/// A response that does not hold the expected elements.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected {action} response: missing element <{element}>")]
pub struct XmlError {
    /// The API action whose response was read.
    pub action: &'static str,
    /// The element that was not found.
    pub element: &'static str,
}

/// Reads a `GetCallerIdentityResponse`.
pub fn parse_get_caller_identity(xml: &str) -> Result<CallerIdentity, XmlError> {
    let action = "GetCallerIdentity";
    let result = required(xml, action, "GetCallerIdentityResult")?;
    Ok(CallerIdentity {
        arn: unescape(required(result, action, "Arn")?),
        user_id: element(result, "UserId").map(unescape).unwrap_or_default(),
        account: element(result, "Account").map(unescape).unwrap_or_default(),
    })
}

/// Reads a `GetRoleResponse` or `GetUserResponse`.
pub fn parse_get_entity(xml: &str) -> Result<IamEntity, XmlError> {
    let (action, result_tag, entity_tag, name_tag, id_tag) = if xml.contains("<GetUserResult") {
        ("GetUser", "GetUserResult", "User", "UserName", "UserId")
    } else {
        ("GetRole", "GetRoleResult", "Role", "RoleName", "RoleId")
    };
    let result = required(xml, action, result_tag)?;
    let entity = required(result, action, entity_tag)?;
    let mut tags = BTreeMap::new();
    if let Some(list) = element(entity, "Tags") {
        for member in elements(list, "member") {
            if let Some(key) = element(member, "Key") {
                let value = element(member, "Value").map(unescape).unwrap_or_default();
                tags.insert(unescape(key), value);
            }
        }
    }
    Ok(IamEntity {
        arn: unescape(required(entity, action, "Arn")?),
        name: unescape(required(entity, action, name_tag)?),
        id: element(entity, id_tag).map(unescape).unwrap_or_default(),
        path: element(entity, "Path").map(unescape).unwrap_or_default(),
        tags,
    })
}

/// Reads an `ErrorResponse`, if the text is one.
pub fn parse_error(xml: &str) -> Option<AwsError> {
    let error = element(xml, "Error")?;
    Some(AwsError {
        kind: element(error, "Type").map(unescape).unwrap_or_default(),
        code: element(error, "Code").map(unescape).unwrap_or_default(),
        message: element(error, "Message").map(unescape).unwrap_or_default(),
    })
}

fn required<'a>(
    xml: &'a str,
    action: &'static str,
    tag: &'static str,
) -> Result<&'a str, XmlError> {
    element(xml, tag).ok_or(XmlError {
        action,
        element: tag,
    })
}

/// The content of the first `<tag>` element (attributes allowed), or `""` for `<tag/>`.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    elements(xml, tag).into_iter().next()
}

/// The contents of the `<tag>` elements in order, not descending into a match.
fn elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end_of_open) = after.find('>') else {
            break;
        };
        let attrs = &after[..end_of_open];
        let boundary_ok =
            attrs.is_empty() || attrs.starts_with(char::is_whitespace) || attrs.starts_with('/');
        if !boundary_ok {
            rest = after;
            continue;
        }
        let body = &after[end_of_open + 1..];
        if attrs.ends_with('/') {
            found.push("");
            rest = body;
            continue;
        }
        let Some(end) = body.find(&close) else {
            break;
        };
        found.push(&body[..end]);
        rest = &body[end + close.len()..];
    }
    found
}

/// Replaces XML's predefined and numeric character references; trims surrounding whitespace.
fn unescape(text: &str) -> String {
    let text = text.trim();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let Some(semi) = after.find(';').filter(|&i| i <= 10) else {
            out.push('&');
            rest = &after[1..];
            continue;
        };
        let entity = &after[1..semi];
        let replacement = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse::<u32>))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match replacement {
            Some(c) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_caller_identity() {
        let xml = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:sts::123456789012:assumed-role/my-role/sess</Arn>
    <UserId>AROAEXAMPLE:sess</UserId>
    <Account>123456789012</Account>
  </GetCallerIdentityResult>
</GetCallerIdentityResponse>"#;
        let id = parse_get_caller_identity(xml);
        assert_eq!(
            id,
            Ok(CallerIdentity {
                arn: "arn:aws:sts::123456789012:assumed-role/my-role/sess".into(),
                user_id: "AROAEXAMPLE:sess".into(),
                account: "123456789012".into(),
            })
        );
    }

    #[test]
    fn reads_role_with_tags_and_escapes() {
        let xml = "<GetRoleResponse><GetRoleResult><Role><Path>/consul-ecs/</Path>\
            <AssumeRolePolicyDocument>%7B%7D</AssumeRolePolicyDocument><RoleName>web</RoleName>\
            <RoleId>AROA1</RoleId><Arn>arn:aws:iam::1:role/consul-ecs/web</Arn><Tags>\
            <member><Key>consul.hashicorp.com.service-name</Key><Value>a&amp;b&#x21;</Value></member>\
            <member><Key>empty</Key><Value/></member></Tags></Role></GetRoleResult></GetRoleResponse>";
        let role = parse_get_entity(xml);
        let mut tags = BTreeMap::new();
        tags.insert(
            "consul.hashicorp.com.service-name".to_owned(),
            "a&b!".to_owned(),
        );
        tags.insert("empty".to_owned(), String::new());
        assert_eq!(
            role,
            Ok(IamEntity {
                arn: "arn:aws:iam::1:role/consul-ecs/web".into(),
                name: "web".into(),
                id: "AROA1".into(),
                path: "/consul-ecs/".into(),
                tags,
            })
        );
    }

    #[test]
    fn reads_errors_and_rejects_garbage() {
        let xml = "<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code>\
            <Message>bad &lt;sig&gt;</Message></Error><RequestId>x</RequestId></ErrorResponse>";
        let error = parse_error(xml);
        assert_eq!(
            error.map(|e| (e.code, e.message)),
            Some(("SignatureDoesNotMatch".to_owned(), "bad <sig>".to_owned()))
        );
        for garbage in [
            "",
            "<",
            "<Arn",
            "<GetCallerIdentityResult>",
            "&&&;;<<>>",
            "<Error",
        ] {
            assert!(parse_get_caller_identity(garbage).is_err(), "{garbage:?}");
            assert!(parse_get_entity(garbage).is_err(), "{garbage:?}");
        }
        assert_eq!(
            unescape("&#xZZ; &bogus; &#1114112; &"),
            "&#xZZ; &bogus; &#1114112; &"
        );
    }
}
