//! Modal's model store on vessel. Models live as files under
//! `/vol/models` on the `model-store` volume. `inference` runs in a warm
//! container whose snapshot predates later training runs: on a miss it
//! reloads the volume and looks again, as the Modal example does.
wit_bindgen::generate!({ world: "model-store", path: "wit" });

use vessel_sdk::Volume;

const STORE: &str = "/vol/models";

struct ModelStore;

fn path(model_id: &str) -> Result<String, String> {
    let ok = !model_id.is_empty()
        && model_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(format!("{STORE}/{model_id}.weights"))
    } else {
        Err(format!("bad model id {model_id:?}: use letters, digits, - and _"))
    }
}

fn load(model_id: &str) -> Result<Option<Vec<f64>>, String> {
    match std::fs::read_to_string(path(model_id)?) {
        Ok(text) => text
            .split_whitespace()
            .map(|w| w.parse::<f64>().map_err(|e| format!("corrupt model: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

impl Guest for ModelStore {
    fn run_training(model_id: String, weights: Vec<f64>) -> u64 {
        let volume = Volume::mounted(STORE).unwrap_or_else(|e| panic!("mount: {e}"));
        let text: Vec<String> = weights.iter().map(f64::to_string).collect();
        let file = path(&model_id).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(file, text.join(" ")).unwrap_or_else(|e| panic!("save: {e}"));
        let info = volume.commit().unwrap_or_else(|e| panic!("commit: {e}"));
        println!("trained {model_id} (version {})", info.version);
        info.version
    }

    fn inference(model_id: String, request: Vec<f64>) -> Result<f64, String> {
        let model = match load(&model_id)? {
            Some(m) => m,
            None => {
                println!("{model_id}: not in this container's snapshot; reloading");
                let volume = Volume::mounted(STORE).map_err(|e| e.to_string())?;
                volume.reload().map_err(|e| e.to_string())?;
                load(&model_id)?.ok_or_else(|| format!("no model {model_id}"))?
            }
        };
        Ok(model.iter().zip(&request).map(|(w, x)| w * x).sum())
    }

    fn main() {
        let infer = |id: &str| vessel_sdk::remote_json("inference", &format!("[\"{id}\", [1, 2, 3]]"));
        println!("before training: {}", show(infer("m1")));
        vessel_sdk::remote_json("run-training", "[\"m1\", [0.5, 1.5, 2.0]]")
            .unwrap_or_else(|e| panic!("training failed: {e}"));
        println!("after training: {}", show(infer("m1")));
        println!("again: {}", show(infer("m1")));
    }
}

/// `{"ok": x}` / `{"err": e}` as text.
fn show(out: Result<String, vessel_sdk::Error>) -> String {
    match out {
        Ok(json) => json,
        Err(e) => format!("call failed: {e}"),
    }
}

export!(ModelStore);
