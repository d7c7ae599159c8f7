//! Loads every config under `tests/data` through the public API and compares the outcome with the
//! expectation stored beside it.
//!
//! * `valid/NAME.json` must load; `valid/NAME.resolved.json` is the exact [`Config::resolved`] output.
//!   The resolved output must itself load and resolve to the same output again.
//! * `invalid/NAME.json` must fail; `invalid/NAME.expected` is the exact error text, which lists every
//!   violation with its path.
//!
//! After a deliberate behaviour change, run with `BLESS=1` to rewrite the expectation files, then
//! review the diff like any other change.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use consul_ecs_config::Config;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn bless() -> bool {
    std::env::var_os("BLESS").is_some_and(|v| v == "1")
}

/// Compares `actual` with the file at `expected_path` (or rewrites the file when blessing).
fn compare(expected_path: &Path, actual: &str) {
    if bless() {
        fs::write(expected_path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(expected_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", expected_path.display()));
    assert_eq!(
        actual,
        expected,
        "output differs from {}",
        expected_path.display()
    );
}

/// Runs one fixture, named `valid/NAME` or `invalid/NAME`.
fn check(name: &str) {
    let input_path = data_dir().join(format!("{name}.json"));
    let input = fs::read_to_string(&input_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", input_path.display()));
    let outcome = Config::from_json(&input);
    if name.starts_with("valid/") {
        let config = outcome.unwrap_or_else(|e| panic!("{name} should load, got: {e}"));
        let resolved = serde_json::to_string_pretty(&config.resolved()).unwrap() + "\n";
        compare(&data_dir().join(format!("{name}.resolved.json")), &resolved);

        let again = Config::from_json(&resolved)
            .unwrap_or_else(|e| panic!("resolved {name} should load again, got: {e}"));
        assert_eq!(
            again.resolved(),
            config.resolved(),
            "{name}: resolving is not stable"
        );
    } else {
        let err = match outcome {
            Ok(config) => panic!("{name} should be rejected, loaded: {config:?}"),
            Err(err) => err,
        };
        let text = err.to_string();
        // The programmatic list and the text agree.
        for violation in err.violations() {
            assert!(
                text.contains(&format!("\t* {violation}\n")),
                "{violation} missing from {text}"
            );
        }
        compare(&data_dir().join(format!("{name}.expected")), &text);
    }
}

macro_rules! fixtures {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check($name);
            }
        )*

        /// Every fixture file on disk has a test above, and every test has its files.
        #[test]
        fn every_fixture_file_is_checked() {
            let listed: Vec<&str> = vec![$($name),*];
            for kind in ["valid", "invalid"] {
                for entry in fs::read_dir(data_dir().join(kind)).unwrap() {
                    let file = entry.unwrap().file_name().into_string().unwrap();
                    let stem = file
                        .strip_suffix(".resolved.json")
                        .or_else(|| file.strip_suffix(".expected"))
                        .or_else(|| file.strip_suffix(".json"))
                        .unwrap_or_else(|| panic!("unexpected file {kind}/{file}"));
                    let name = format!("{kind}/{stem}");
                    assert!(listed.contains(&name.as_str()), "{name} has no test");
                }
            }
        }
    };
}

fixtures! {
    // Loads, with the defaults of every absent field.
    minimal => "valid/minimal",
    basic_service_with_upstream => "valid/basic",
    every_field_set => "valid/extensive",
    top_level_nulls_get_defaults => "valid/null_top_level",
    nested_nulls_get_defaults => "valid/null_nested",
    empty_objects_arrays_and_strings => "valid/empty_fields",
    mesh_gateway_with_addresses => "valid/gateway_mesh",
    gateway_with_null_fields => "valid/gateway_null_fields",
    null_proxy_of_a_service_is_empty_proxy => "valid/proxy_null_for_service",
    open_object_keys_match_without_case => "valid/open_object_key_case",

    // Rejected, with every violation.
    missing_required_fields => "invalid/missing_fields",
    empty_object => "invalid/empty_object",
    upper_case_service_and_gateway_names => "invalid/uppercase_names",
    additional_property_in_service => "invalid/additional_property_service",
    unknown_top_level_fields => "invalid/unknown_top_level",
    truncated_json => "invalid/not_json_truncated",
    text_that_is_not_json => "invalid/not_json_text",
    root_that_is_not_an_object => "invalid/root_not_object",
    wrong_types => "invalid/wrong_types",
    null_where_not_allowed => "invalid/null_not_allowed",
    missing_nested_required_fields => "invalid/missing_nested_required",
    expose_is_validated => "invalid/expose_invalid",
    health_check_ports_must_be_integers => "invalid/health_check_port_not_integer",
    integers_with_fraction_or_exponent => "invalid/fractional_integers",
    ports_out_of_range => "invalid/ports_out_of_range",
    numbers_too_large_for_their_field => "invalid/numbers_too_large",
    duplicate_list_items => "invalid/duplicate_items",
    outlier_detection_limits => "invalid/outlier_detection_out_of_range",
    open_object_keys_are_checked_whatever_their_case => "invalid/open_object_key_case_checked",
}
