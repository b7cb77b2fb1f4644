//! Each service describes its own operations in an `openapi.json` of its crate; the system
//! routes every service shares are described once here and merged in.

use serde_json::Value;

const SYSTEM: &str = include_str!("../openapi/system.json");

/// The service's document with the system paths and shared components added.
pub fn merge(service_doc: &str) -> anyhow::Result<Value> {
    let mut doc: Value = serde_json::from_str(service_doc)?;
    let system: Value = serde_json::from_str(SYSTEM)?;
    let paths = doc["paths"].as_object_mut().ok_or_else(|| anyhow::anyhow!("openapi.json has no paths"))?;
    for (path, item) in system["paths"].as_object().into_iter().flatten() {
        paths.insert(path.clone(), item.clone());
    }
    for section in ["securitySchemes", "schemas", "responses"] {
        for (name, item) in system["components"][section].as_object().into_iter().flatten() {
            doc["components"][section][name] = item.clone();
        }
    }
    Ok(doc)
}
