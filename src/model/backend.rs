//! The one module that names the compute backend and device. Everything else takes a
//! [`Device`] and never names a backend, so switching backends (e.g. to burn's `flex` CPU
//! backend or a GPU) changes only this file and the `burn` features in `Cargo.toml`.
//!
//! The backend is burn's CPU ndarray backend, multi-threaded (rayon) with SIMD kernels. burn
//! 0.22 deprecates it in favour of `flex`; it is kept because it is the backend measured for
//! this project.

pub use burn::tensor::Device;

/// The device for inference (no autodiff): CPU ndarray.
#[allow(deprecated)] // burn 0.22 deprecates ndarray; see the module comment
pub fn infer_device() -> Device {
    Device::ndarray()
}

/// The device for training: [`infer_device`] with autodiff, so tensors created on it (and
/// modules initialised or loaded on it) record gradients.
pub fn train_device() -> Device {
    infer_device().autodiff()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_device_has_autodiff_and_infer_device_not() {
        assert!(train_device().is_autodiff());
        assert!(!infer_device().is_autodiff());
    }
}
