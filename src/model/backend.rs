//! The one module that names the compute backend and device. Everything else takes a
//! [`Device`] and never names a backend, so switching backends changes only this file and the
//! cargo features in `Cargo.toml`.
//!
//! - default: burn's CPU ndarray backend, multi-threaded (rayon), matrix products by the
//!   system OpenBLAS. burn 0.22 deprecates it in favour of `flex`; it is kept because it is
//!   the backend measured for this project.
//! - `--features tch`: libtorch 2.9.0 on the CPU (burn-tch), with as many intra-op threads as
//!   the process may use cores, and libtorch's generator seeded. Needs LIBTORCH at build time
//!   and LD_LIBRARY_PATH at run time (`bash benches/libtorch.sh DIR`).
//! - `--features cuda`: burn's CUDA backend (cubecl), CUDA device 0. The NVIDIA driver is
//!   loaded at run time; [`check_available`] says clearly when there is none.
//!
//! Weights are initialised by the model code's own seeded generator (not the backend's), so
//! the same seed gives the same initial weights on every backend; results of training differ
//! across backends in the last bits of floating point, so compare them by value, not by hash.

use burn::tensor::ops::AttentionModuleOptions;
pub use burn::tensor::Device;
use burn::tensor::{Bool, Tensor};

#[cfg(all(feature = "tch", feature = "cuda"))]
compile_error!("the `tch` and `cuda` features each pick the compute backend: enable one of them");

/// The compiled-in backend, as logs and error messages name it.
pub const BACKEND: &str = if cfg!(feature = "tch") {
    "libtorch 2.9.0 (CPU)"
} else if cfg!(feature = "cuda") {
    "CUDA"
} else {
    "ndarray (CPU)"
};

/// The backend as cache keys of model stages name it: none for the default (ndarray), so its
/// keys do not depend on the feature's existence; `tch` or `cuda` otherwise.
pub const KEY: Option<&str> = if cfg!(feature = "tch") {
    Some("tch")
} else if cfg!(feature = "cuda") {
    Some("cuda")
} else {
    None
};

/// The device for inference (no autodiff).
#[cfg(not(any(feature = "tch", feature = "cuda")))]
#[allow(deprecated)] // burn 0.22 deprecates ndarray; see the module comment
pub fn infer_device() -> Device {
    Device::ndarray()
}

/// The device for inference (no autodiff): libtorch's CPU device, set up on first use.
#[cfg(feature = "tch")]
#[allow(deprecated)] // burn 0.22 deprecates burn-tch; it is the libtorch comparison
pub fn infer_device() -> Device {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        // libtorch's intra-op pool: all the cores this process may use (its default counts
        // the machine's physical cores, whatever the affinity mask or cgroup says).
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        tch::set_num_threads(i32::try_from(threads).unwrap_or(i32::MAX));
        // One thread between ops: the model code issues them one after the other.
        tch::set_num_interop_threads(1);
        // Nothing here draws from libtorch's generator (initialisation and sampling use the
        // model code's seeded generator); seeded anyway so that nothing can vary by run.
        tch::manual_seed(0);
    });
    Device::libtorch()
}

/// The device for inference (no autodiff): CUDA device 0.
#[cfg(feature = "cuda")]
pub fn infer_device() -> Device {
    Device::cuda(0)
}

/// The device for training: [`infer_device`] with autodiff, so tensors created on it (and
/// modules initialised or loaded on it) record gradients.
pub fn train_device() -> Device {
    infer_device().autodiff()
}

/// burn's attention op (`burn::tensor::module::attention`, whose boolean mask is `true` where
/// a key is hidden), computed correctly on every backend: model code calls this one.
///
/// burn-tch 0.22.1 hands the mask unchanged to libtorch's `scaled_dot_product_attention`,
/// where `true` means "may attend": without autodiff (evaluation) padding was attended to and
/// real keys hidden (a test, `padded_tokens_are_not_attended_to`, fails that way). With
/// autodiff burn computes attention by its reference decomposition on every backend; under
/// `tch` this does the same without autodiff. The other backends use burn's op unchanged
/// (on ndarray that is the same decomposition).
pub fn attention(
    query: Tensor<4>,
    key: Tensor<4>,
    value: Tensor<4>,
    mask: Option<Tensor<4, Bool>>,
    attn_bias: Option<Tensor<4>>,
    options: AttentionModuleOptions,
) -> Tensor<4> {
    #[cfg(feature = "tch")]
    let op = burn::tensor::module::attention_fallback;
    #[cfg(not(feature = "tch"))]
    let op = burn::tensor::module::attention;
    op(query, key, value, mask, attn_bias, options)
}

/// Whether the compiled-in backend can run here: always for the CPU backends; for CUDA,
/// whether the NVIDIA driver loads and shows a device. Stages that compute on the device call
/// it first, so that a CUDA build on a machine without a GPU fails with this message instead
/// of a panic deep in the driver bindings.
pub fn check_available() -> Result<(), String> {
    #[cfg(feature = "cuda")]
    {
        use burn::tensor::DeviceType;
        // Enumerating asks the driver only if libcuda loads; without one it lists nothing.
        if Device::enumerate(DeviceType::Cuda)
            .into_iter()
            .next()
            .is_none()
        {
            return Err(
                "this build computes on CUDA (cargo feature `cuda`) but found no CUDA \
                        device: no NVIDIA driver (libcuda.so) could be loaded or it lists no \
                        GPU; run it on a machine with an NVIDIA GPU, or use a build without \
                        the `cuda` feature"
                    .into(),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_device_has_autodiff_and_infer_device_not() {
        assert!(train_device().is_autodiff());
        assert!(!infer_device().is_autodiff());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn the_cpu_backends_are_always_available() {
        assert_eq!(check_available(), Ok(()));
    }

    #[cfg(feature = "tch")]
    #[test]
    fn libtorch_uses_every_core_the_process_may_use() {
        use burn::tensor::Tensor;
        let x = Tensor::<1>::from_floats([1.0, 2.0, 3.0], &infer_device());
        assert_eq!(x.sum().into_scalar::<f32>(), 6.0);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(tch::get_num_threads() as usize, cores);
    }
}
