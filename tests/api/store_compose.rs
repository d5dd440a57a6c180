//! docker-compose.yaml and docker-compose.dify.yaml cannot be run here (no Docker engine), so
//! they are parsed and held to what they promise: pinned images, persistent volumes, health
//! checks, lore configured for Qdrant with keys lore's config accepts, the optional model server
//! behind a profile, and the Dify override joining Dify's SSRF-proxy network as an external one.

use std::path::Path;

use figment::providers::Format as _;
use serde_norway::Value;

fn load(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{name} is not valid YAML: {e}"))
}

fn text<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    let mut at = value;
    for key in path {
        at = &at[*key];
    }
    at.as_str()
        .unwrap_or_else(|| panic!("{} is not a string: {at:?}", path.join(".")))
}

/// `name:tag` with a version-like tag (not `latest`).
fn assert_pinned(image: &str) {
    let (_, tag) = image
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("image '{image}' has no tag"));
    assert!(
        tag != "latest" && tag.chars().any(|c| c.is_ascii_digit()),
        "image '{image}' is not pinned to a version"
    );
}

#[test]
fn compose_file_runs_lore_on_qdrant_with_pinned_images_volumes_and_health_checks() {
    let compose = load("docker-compose.yaml");
    let services = compose["services"].as_mapping().expect("services");
    let declared = compose["volumes"].as_mapping().expect("top-level volumes");
    for (name, service) in services {
        let name = name.as_str().expect("service name");
        assert_pinned(text(service, &["image"]));
        let test = &service["healthcheck"]["test"];
        assert!(
            test.as_sequence().is_some_and(|t| t.len() >= 2),
            "{name} has no health check"
        );
        // Named volumes only, each declared, so data outlives containers.
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let (source, _) = volume
                .as_str()
                .and_then(|v| v.split_once(':'))
                .unwrap_or_else(|| panic!("{name}: volume {volume:?}"));
            assert!(
                declared.contains_key(source),
                "{name}: volume '{source}' is not declared"
            );
        }
    }

    let qdrant = &compose["services"]["qdrant"];
    assert!(text(qdrant, &["image"]).starts_with("qdrant/qdrant:v1.20"));
    let storage = qdrant["volumes"].as_sequence().expect("qdrant volumes");
    assert!(
        storage
            .iter()
            .any(|v| v.as_str().is_some_and(|v| v.ends_with(":/qdrant/storage")))
    );
    assert!(
        qdrant.get("ports").is_none(),
        "Qdrant must not be published"
    );
    assert!(text(qdrant, &["environment", "QDRANT__SERVICE__API_KEY"]).contains("QDRANT_API_KEY"));

    let lore = &compose["services"]["lore"];
    assert_eq!(text(lore, &["build"]), ".");
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("Dockerfile")
            .is_file()
    );
    assert_eq!(
        text(lore, &["depends_on", "qdrant", "condition"]),
        "service_healthy"
    );
    let env = &lore["environment"];
    assert_eq!(text(env, &["LORE_STORAGE__BACKEND"]), "qdrant");
    assert_eq!(
        text(env, &["LORE_STORAGE__QDRANT__URL"]),
        "http://qdrant:6334",
        "lore talks gRPC to the qdrant service"
    );
    assert!(text(env, &["LORE_STORAGE__QDRANT__API_KEY"]).contains("QDRANT_API_KEY"));
    assert!(
        text(env, &["LORE_API_KEY"]).contains(":?"),
        "lore must refuse to start without a key"
    );
    assert!(
        lore["volumes"]
            .as_sequence()
            .expect("lore volumes")
            .iter()
            .any(|v| v.as_str() == Some(&format!("lore_data:{}", text(env, &["LORE_DATA_DIR"]))))
    );

    // Every LORE_ variable is a key lore's config accepts (a typo would fail at start).
    let mut config = serde_json::Map::new();
    for (key, value) in env.as_mapping().expect("lore environment") {
        let key = key.as_str().expect("variable name");
        let value = value.as_str().expect("variable value");
        let path: Vec<String> = key
            .trim_start_matches("LORE_")
            .to_ascii_lowercase()
            .split("__")
            .map(str::to_owned)
            .collect();
        let sample = if value.starts_with("${") {
            "sample-value-1234567890"
        } else {
            value
        };
        insert(&mut config, &path, sample);
    }
    let toml = toml_of(&serde_json::Value::Object(config));
    let parsed: Result<lore::config::Config, _> = figment::Figment::new()
        .merge(figment::providers::Serialized::defaults(
            lore::config::Config::default(),
        ))
        .merge(figment::providers::Toml::string(&toml))
        .extract();
    let parsed =
        parsed.unwrap_or_else(|e| panic!("lore's environment in the compose file: {e}\n{toml}"));
    assert_eq!(parsed.storage.backend, lore::config::StorageBackend::Qdrant);

    let ollama = &compose["services"]["ollama"];
    assert_eq!(
        ollama["profiles"][0].as_str(),
        Some("llm"),
        "the model server is optional"
    );
    assert!(text(env, &["LORE_LLM__BASE_URL"]).contains("http://ollama:11434/v1"));
}

#[test]
fn dify_override_joins_difys_ssrf_proxy_network_as_external() {
    let compose = load("docker-compose.dify.yaml");
    let networks: Vec<&str> = compose["services"]["lore"]["networks"]
        .as_sequence()
        .expect("lore networks")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        networks.contains(&"default"),
        "lore must keep reaching qdrant"
    );
    let dify = networks
        .iter()
        .find(|n| **n != "default")
        .expect("a Dify network");
    let network = &compose["networks"][*dify];
    assert_eq!(network["external"].as_bool(), Some(true));
    assert!(text(network, &["name"]).contains("docker_ssrf_proxy_network"));
    assert!(
        compose["services"]["lore"].get("ports").is_none(),
        "the override opens nothing to the outside"
    );
    assert_eq!(
        compose["services"].as_mapping().map(|s| s.len()),
        Some(1),
        "the override only attaches lore"
    );
}

fn insert(map: &mut serde_json::Map<String, serde_json::Value>, path: &[String], value: &str) {
    match path {
        [last] => {
            map.insert(last.clone(), serde_json::Value::String(value.to_owned()));
        }
        [first, rest @ ..] => {
            let inner = map
                .entry(first.clone())
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
            if let serde_json::Value::Object(inner) = inner {
                insert(inner, rest, value);
            }
        }
        [] => {}
    }
}

/// A nested JSON object of strings as TOML, so figment reads it as lore.toml would be read.
fn toml_of(value: &serde_json::Value) -> String {
    fn section(prefix: &str, map: &serde_json::Map<String, serde_json::Value>, out: &mut String) {
        let mut tables = Vec::new();
        if !prefix.is_empty() {
            out.push_str(&format!("[{prefix}]\n"));
        }
        for (key, value) in map {
            match value {
                serde_json::Value::Object(inner) => tables.push((key, inner)),
                other => out.push_str(&format!("{key} = {other}\n")),
            }
        }
        for (key, inner) in tables {
            let name = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            section(&name, inner, out);
        }
    }
    let mut out = String::new();
    if let serde_json::Value::Object(map) = value {
        section("", map, &mut out);
    }
    out
}
