//! `consul-ecs config validate`, run as the real binary: where the config comes from, what is printed,
//! and the exit codes.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const ENV: &str = "CONSUL_ECS_CONFIG_JSON";

const VALID: &str = r#"{
  "bootstrapDir": "/consul",
  "consulServers": { "hosts": "10.0.0.5" },
  "service": { "name": "orders", "port": 9090 }
}"#;

const OTHER_VALID: &str = r#"{
  "bootstrapDir": "/mnt/other",
  "consulServers": { "hosts": "consul.example", "grpc": { "port": 8502 } },
  "gateway": { "kind": "mesh-gateway" }
}"#;

/// `consul-ecs config validate` with `args`, the config variable set to `env` (or removed), and
/// `stdin` on standard input.
fn run(args: &[&str], env: Option<&str>, stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_consul-ecs"));
    command
        .args(["config", "validate"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match env {
        Some(value) => command.env(ENV, value),
        None => command.env_remove(ENV),
    };
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Asserts success and returns the resolved config printed after the `ok` line.
fn resolved(output: &Output) -> Value {
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(output));
    let out = stdout(output);
    let json = out
        .strip_prefix("ok\n")
        .unwrap_or_else(|| panic!("stdout should start with ok: {out}"));
    serde_json::from_str(json).unwrap()
}

#[test]
fn valid_config_from_the_environment_prints_ok_and_the_resolved_config() {
    let output = run(&[], Some(VALID), "");
    let config = resolved(&output);
    assert_eq!(config["service"]["name"], "orders");
    // Defaults applied.
    assert_eq!(config["consulServers"]["http"]["port"], 8501);
    assert_eq!(config["consulServers"]["http"]["https"], true);
    assert_eq!(config["consulServers"]["grpc"]["port"], 8503);
    assert_eq!(config["proxy"]["publicListenerPort"], 20000);
    assert_eq!(config["proxy"]["healthCheckPort"], 22000);
    assert_eq!(config["transparentProxy"]["enabled"], true);
    assert_eq!(config["controller"]["iamRolePath"], "/consul-ecs/");
    assert_eq!(config["logLevel"], "INFO");
    assert!(stderr(&output).is_empty(), "stderr: {}", stderr(&output));
}

#[test]
fn file_option_reads_the_file_instead_of_the_environment() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(OTHER_VALID.as_bytes()).unwrap();
    let path = file.path().to_str().unwrap();

    for flag in ["--file", "-f"] {
        let config = resolved(&run(&[flag, path], Some(VALID), ""));
        assert_eq!(config["bootstrapDir"], "/mnt/other", "{flag}");
        assert_eq!(config["gateway"]["kind"], "mesh-gateway", "{flag}");
        assert_eq!(config["gateway"]["healthCheckPort"], 22000, "{flag}");
        assert_eq!(config["consulServers"]["grpc"]["port"], 8502, "{flag}");
    }
}

#[test]
fn file_dash_reads_standard_input() {
    let config = resolved(&run(&["--file", "-"], None, OTHER_VALID));
    assert_eq!(config["bootstrapDir"], "/mnt/other");
}

#[test]
fn invalid_config_exits_1_and_names_every_violation() {
    let input = r#"{
      "bootstrapDir": "",
      "service": { "name": "Orders", "port": "9090", "checks": [] },
      "proxy": { "upstreams": [{ "destinationName": "db", "localBindPort": 70000 }] }
    }"#;
    let output = run(&["--file", "-"], None, input);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).is_empty(), "stdout: {}", stdout(&output));
    let err = stderr(&output);
    assert!(
        err.starts_with("invalid config: 6 errors occurred:\n"),
        "{err}"
    );
    for line in [
        "\t* bootstrapDir: String length must be greater than or equal to 1\n",
        "\t* service.name: Does not match pattern",
        "\t* service.port: Invalid type. Expected: integer, given: string\n",
        "\t* service: Additional property checks is not allowed\n",
        "\t* proxy.upstreams.0.localBindPort: Must be less than or equal to 65535\n",
        "\t* (root): consulServers is required\n",
    ] {
        assert!(err.contains(line), "missing {line:?} in {err}");
    }
}

#[test]
fn invalid_config_from_the_environment_exits_1() {
    let output = run(&[], Some(r#"{"bootstrapDir":""}"#), "");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with(
            "invalid config: 2 errors occurred:\n\
             \t* bootstrapDir: String length must be greater than or equal to 1\n\
             \t* (root): consulServers is required\n"
        ),
        "{}",
        stderr(&output)
    );
}

#[test]
fn text_that_is_not_json_exits_1_with_line_and_column() {
    let output = run(&[], Some("{\"bootstrapDir\": /consul}"), "");
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("invalid config: not valid JSON: expected value at line 1 column 18"),
        "{err}"
    );
}

#[test]
fn empty_or_unset_variable_exits_1_as_not_populated() {
    for env in [Some(""), None] {
        let output = run(&[], env, "");
        assert_eq!(output.status.code(), Some(1), "{env:?}");
        assert_eq!(
            stderr(&output),
            "invalid config: \"CONSUL_ECS_CONFIG_JSON\" isn't populated\n",
            "{env:?}"
        );
        assert!(stdout(&output).is_empty());
    }
}

#[test]
fn unreadable_file_exits_1_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.json");
    let output = run(&["--file", missing.to_str().unwrap()], Some(VALID), "");
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.starts_with("invalid config: reading the config file"),
        "{err}"
    );
    assert!(err.contains("absent.json"), "{err}");
}
