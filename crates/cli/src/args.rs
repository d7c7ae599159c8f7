//! Accepts upstream's single-dash long flags (`-log-level debug`) alongside the GNU form clap expects.
//!
//! Upstream parses flags with Go's `flag` package, where `-name` and `--name` mean the same thing. Task
//! definitions written for upstream pass single-dash flags, so we rewrite them before clap sees them. Only
//! names that the (sub)command really defines are rewritten, and rewriting stops at the first positional
//! argument that is not a flag's value or at `--`, so a wrapped program's own flags
//! (`app-entrypoint -shutdown-delay 10s /bin/app -log-level x`) are passed through untouched.

use clap::Command;

/// Rewrites `-name[=value]` to `--name[=value]` wherever `name` is a long flag of the command path.
pub(crate) fn normalize(root: &Command, args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    if let Some(program) = iter.next() {
        out.push(program);
    }
    let mut command = root;
    let mut takes_value_next = false;
    for arg in iter.by_ref() {
        if takes_value_next {
            takes_value_next = false;
            out.push(arg);
            continue;
        }
        if arg == "--" {
            out.push(arg);
            break;
        }
        if let Some(stripped) = arg.strip_prefix('-') {
            let body = stripped.strip_prefix('-').unwrap_or(stripped);
            let (name, has_inline_value) = match body.split_once('=') {
                Some((name, _)) => (name, true),
                None => (body, false),
            };
            match long_flag(command, name) {
                Some(takes_value) if name.len() > 1 => {
                    takes_value_next = takes_value && !has_inline_value;
                    out.push(format!("--{body}"));
                }
                _ => {
                    // A short flag (or an unknown one, left for clap to reject) may take a value too.
                    takes_value_next = !has_inline_value
                        && body.len() == 1
                        && short_flag_takes_value(command, body);
                    out.push(arg);
                }
            }
            continue;
        }
        if let Some(sub) = command.find_subcommand(&arg) {
            command = sub;
            out.push(arg);
            continue;
        }
        // The first positional ends flag parsing, as with Go's `flag` package.
        out.push(arg);
        break;
    }
    out.extend(iter);
    out
}

/// Whether `name` is a long flag (or `help`) of `command`, and if so whether it takes a value.
fn long_flag(command: &Command, name: &str) -> Option<bool> {
    if name == "help" {
        return Some(false);
    }
    command
        .get_arguments()
        .find(|a| a.get_long() == Some(name))
        .map(|a| a.get_action().takes_values())
}

fn short_flag_takes_value(command: &Command, body: &str) -> bool {
    let Some(c) = body.chars().next() else {
        return false;
    };
    command
        .get_arguments()
        .find(|a| a.get_short() == Some(c))
        .is_some_and(|a| a.get_action().takes_values())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn cli() -> Command {
        Command::new("consul-ecs")
            .subcommand(
                Command::new("app-entrypoint")
                    .arg(Arg::new("shutdown-delay").long("shutdown-delay"))
                    .arg(
                        Arg::new("verbose")
                            .long("verbose")
                            .action(ArgAction::SetTrue),
                    )
                    .arg(Arg::new("cmd").num_args(0..).trailing_var_arg(true)),
            )
            .subcommand(
                Command::new("config").subcommand(
                    Command::new("validate").arg(Arg::new("file").long("file").short('f')),
                ),
            )
    }

    fn check(input: &[&str], expected: &[&str]) {
        let args = input.iter().map(|s| s.to_string()).collect();
        assert_eq!(normalize(&cli(), args), expected);
    }

    #[test]
    fn rewrites_known_single_dash_flags_until_the_wrapped_command() {
        check(
            &[
                "consul-ecs",
                "app-entrypoint",
                "-shutdown-delay",
                "10s",
                "-verbose",
                "/bin/app",
                "-shutdown-delay",
                "-x",
            ],
            &[
                "consul-ecs",
                "app-entrypoint",
                "--shutdown-delay",
                "10s",
                "--verbose",
                "/bin/app",
                "-shutdown-delay",
                "-x",
            ],
        );
    }

    #[test]
    fn keeps_inline_values_and_short_flags() {
        check(
            &["consul-ecs", "app-entrypoint", "-shutdown-delay=5s", "app"],
            &["consul-ecs", "app-entrypoint", "--shutdown-delay=5s", "app"],
        );
        check(
            &["consul-ecs", "config", "validate", "-f", "-"],
            &["consul-ecs", "config", "validate", "-f", "-"],
        );
        check(
            &["consul-ecs", "config", "validate", "-file", "x.json"],
            &["consul-ecs", "config", "validate", "--file", "x.json"],
        );
    }

    #[test]
    fn stops_at_double_dash_and_leaves_unknown_flags_to_clap() {
        check(
            &["consul-ecs", "app-entrypoint", "-nope", "--", "-verbose"],
            &["consul-ecs", "app-entrypoint", "-nope", "--", "-verbose"],
        );
        check(
            &["consul-ecs", "app-entrypoint", "-help"],
            &["consul-ecs", "app-entrypoint", "--help"],
        );
    }
}
