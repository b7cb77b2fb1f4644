//! `deploy/k8s` checked against the Kubernetes API schemas (kubernetes-validate from PyPI, run
//! offline and strict: unknown fields are errors), and a broken manifest is caught.

use std::path::{Path, PathBuf};
use std::process::Command;

fn validator() -> String {
    std::env::var("KUBERNETES_VALIDATE_BIN").unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/kubernetes-validate").display().to_string()
    })
}

/// Runs the validator on `files`; answers whether all passed, and what it said.
fn validate(files: &[PathBuf]) -> (bool, String) {
    let output = Command::new(validator())
        .arg("--strict")
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}): deploy/test installs it", validator()));
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), said)
}

fn manifests() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/k8s")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_kubernetes_manifests_validate_and_a_broken_one_does_not() {
    let files = manifests();
    let (passed, said) = validate(&files);
    assert!(passed, "deploy/k8s does not validate:\n{said}");
    for resource in [
        "statefulset/nats",
        "deployment/intake",
        "deployment/assignment",
        "deployment/verification",
        "deployment/notification",
        "deployment/publication",
        "deployment/workbench",
        "ingress/skyledger-apis",
        "ingress/skyledger-origin",
        "poddisruptionbudget/nats",
        "poddisruptionbudget/workbench",
    ] {
        assert!(said.contains(&format!("passed for resource {resource} ")), "{resource} was not validated:\n{said}");
    }

    // The same services with a replica count that is no number, and a probe's misspelt field.
    let dir = tempfile::tempdir().expect("tempdir");
    let services = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/k8s/40-services.yaml"))
        .expect("40-services.yaml");
    for (name, broken) in [
        ("replicas.yaml", services.replacen("replicas: 2", "replicas: two", 1)),
        ("probe.yaml", services.replacen("periodSeconds: 10", "periodSecond: 10", 1)),
    ] {
        assert_ne!(broken, services, "{name}: the manifest changed");
        let path = dir.path().join(name);
        std::fs::write(&path, broken).expect("write the broken manifest");
        let (passed, said) = validate(&[path]);
        assert!(!passed, "a broken manifest ({name}) passed:\n{said}");
        assert!(said.contains("did not validate"), "{name}: the validator names what is wrong:\n{said}");
    }
}
