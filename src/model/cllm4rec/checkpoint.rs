//! Checkpoints: every float parameter of a module, named by its path in the module tree
//! (`backbone.h.0.attn.c_attn.weight`, `collab_items`), in one safetensors file. Names and
//! bytes depend only on the weights, so the same weights give byte-identical files.
//!
//! An enum module (the [`Backbone`](crate::model::backbone::Backbone)) adds no path segment:
//! its variant name is left out, so a GPT-2 backbone's parameters are `backbone.wte.weight`
//! whichever enum holds it. A prefix can be left out of a file (a frozen backbone that is
//! stored beside the checkpoint in its original form).

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};
use safetensors::tensor::{Dtype, TensorView};

/// Parameter paths of a module tree as it is walked: enum variants add no segment.
#[derive(Default)]
struct ParamPath {
    segments: Vec<String>,
    pushed: Vec<bool>,
}

impl ParamPath {
    fn enter(&mut self, name: &str, container_type: &str) {
        let variant = container_type.starts_with("Enum:");
        if !variant {
            self.segments.push(name.to_owned());
        }
        self.pushed.push(!variant);
    }
    fn exit(&mut self) {
        if self.pushed.pop() == Some(true) {
            self.segments.pop();
        }
    }
    fn name(&self) -> String {
        self.segments.join(".")
    }
}

/// Whether `name` lies under the module path `prefix` (`backbone` covers `backbone.wte.weight`).
fn under(name: &str, prefix: Option<&str>) -> bool {
    prefix.is_some_and(|p| {
        name.strip_prefix(p)
            .is_some_and(|rest| rest.starts_with('.'))
    })
}

struct Collect<'a> {
    path: ParamPath,
    skip: Option<&'a str>,
    out: BTreeMap<String, (Vec<usize>, Vec<u8>)>,
}

impl ModuleVisitor for Collect<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let name = self.path.name();
        if under(&name, self.skip) {
            return;
        }
        let t = param.val();
        let shape = t.dims().to_vec();
        let values: Vec<f32> = t
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.out.insert(name, (shape, bytes));
    }
}

/// Every float parameter of `m` as safetensors bytes.
pub fn to_bytes<M: Module>(m: &M) -> Result<Vec<u8>, String> {
    to_bytes_except(m, None)
}

/// Every float parameter of `m` except those under the module path `skip`.
pub fn to_bytes_except<M: Module>(m: &M, skip: Option<&str>) -> Result<Vec<u8>, String> {
    let mut c = Collect {
        path: ParamPath::default(),
        skip,
        out: BTreeMap::new(),
    };
    m.visit(&mut c);
    let views: Vec<(String, TensorView)> = c
        .out
        .iter()
        .map(|(k, (shape, bytes))| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (k.clone(), v))
                .map_err(|e| format!("{k}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    safetensors::serialize(views, None).map_err(|e| e.to_string())
}

struct Assign<'a> {
    path: ParamPath,
    skip: Option<&'a str>,
    file: &'a safetensors::SafeTensors<'a>,
    error: Option<String>,
    used: usize,
}

impl ModuleMapper for Assign<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = self.path.name();
        if under(&name, self.skip) {
            return param;
        }
        let view = match self.file.tensor(&name) {
            Ok(v) => v,
            Err(_) => {
                self.error
                    .get_or_insert(format!("the checkpoint has no `{name}`"));
                return param;
            }
        };
        let want = param.val().dims().to_vec();
        if view.shape() != want.as_slice() || view.dtype() != Dtype::F32 {
            self.error.get_or_insert(format!(
                "`{name}`: the checkpoint has {:?} {:?}, the model {:?} F32",
                view.dtype(),
                view.shape(),
                want
            ));
            return param;
        }
        self.used += 1;
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        param.map(|old| {
            let req = old.is_require_grad();
            let device = old.device();
            let shape: [usize; D] = want.clone().try_into().expect("rank D");
            Tensor::<D>::from_data(TensorData::new(values, shape), &device).set_require_grad(req)
        })
    }
}

/// Load every float parameter of `m` from safetensors bytes; every parameter must be there
/// with its shape, and every tensor of the file must be used.
pub fn from_bytes<M: Module>(m: M, bytes: &[u8]) -> Result<M, String> {
    from_bytes_except(m, bytes, None)
}

/// [`from_bytes`] for a file written by [`to_bytes_except`] with the same `skip`: the
/// parameters under it keep their values.
pub fn from_bytes_except<M: Module>(m: M, bytes: &[u8], skip: Option<&str>) -> Result<M, String> {
    let file = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| format!("not a safetensors file: {e}"))?;
    let mut a = Assign {
        path: ParamPath::default(),
        skip,
        file: &file,
        error: None,
        used: 0,
    };
    let m = m.map(&mut a);
    if let Some(e) = a.error {
        return Err(e);
    }
    if a.used != file.len() {
        return Err(format!(
            "the checkpoint has {} tensors, the model {}",
            file.len(),
            a.used
        ));
    }
    Ok(m)
}
