//! No service's SQL names another service's schema: what a service needs of another's data it
//! keeps from events.

use std::path::Path;

const SERVICES: [&str; 5] = ["intake", "assignment", "verification", "notification", "publication"];

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs" || e == "sql") {
            out.push(path);
        }
    }
}

/// Places where `schema.` starts a qualified name (`intake.problems`).
fn qualified_uses(text: &str, schema: &str) -> usize {
    let needle = format!("{schema}.");
    text.match_indices(&needle)
        .filter(|(i, _)| {
            let before = text[..*i].chars().next_back();
            let after = text[i + needle.len()..].chars().next();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
                && after.is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        })
        .count()
}

#[test]
fn no_service_names_another_services_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for service in SERVICES {
        let mut paths = Vec::new();
        files(&root.join("services").join(service), &mut paths);
        assert!(!paths.is_empty());
        let mut own = 0;
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap();
            own += qualified_uses(&text, service);
            for other in SERVICES.iter().filter(|o| **o != service) {
                assert_eq!(qualified_uses(&text, other), 0, "{} names the {other} schema", path.display());
            }
        }
        assert!(own > 0, "{service} writes schema-qualified SQL");
    }
}
