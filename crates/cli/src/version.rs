//! `consul-ecs version`: the human-readable version string.

/// Arguments of `version`; upstream ignores any it is given.
#[derive(clap::Args)]
pub(crate) struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _ignored: Vec<String>,
}

/// `consul-ecs v<version>[ (<commit>)]`, the commit coming from `GIT_COMMIT` at build time.
pub(crate) fn human_version() -> String {
    let mut v = format!("consul-ecs v{}", env!("CARGO_PKG_VERSION"));
    if let Some(commit) = option_env!("GIT_COMMIT").filter(|c| !c.is_empty()) {
        v.push_str(&format!(" ({commit})"));
    }
    v.replace('\'', "")
}
