//! Multi-VAE (Liang et al., "Variational Autoencoders for Collaborative Filtering", WWW 2018):
//! a user's training items, L2-normalised, go through a tanh MLP encoder to a Gaussian
//! posterior q(z|x); a tanh MLP decoder maps z to logits over all items, trained with the
//! multinomial log-likelihood of the items and a KL term weighted by an annealed beta.
//!
//! The architecture is the paper's [I -> hidden -> latent -> hidden -> I] (600 and 200 in the
//! paper). The first encoder layer reads the sparse input by gathering and summing the weight
//! rows of the user's items (the same product as a dense `x W`, without multiplying zeros).

use burn::module::{Module, Param};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};

use crate::data::rng::Rng;
use crate::model::cllm4rec::normal;

#[derive(Module, Debug)]
pub struct MultiVae {
    /// [items, hidden]: the first encoder layer (rows gathered by the sparse input)
    pub enc_w1: Param<Tensor<2>>,
    /// [hidden]
    pub enc_b1: Param<Tensor<1>>,
    /// [hidden, 2 * latent]: mean (first half) and log-variance (second half)
    pub enc_w2: Param<Tensor<2>>,
    /// [2 * latent]
    pub enc_b2: Param<Tensor<1>>,
    /// [latent, hidden]
    pub dec_w1: Param<Tensor<2>>,
    /// [hidden]
    pub dec_b1: Param<Tensor<1>>,
    /// [hidden, items]
    pub dec_w2: Param<Tensor<2>>,
    /// [items]
    pub dec_b2: Param<Tensor<1>>,
}

/// A batch of users' inputs as sparse rows: entry `k` is `(row[k], col[k], val[k])`.
#[derive(Debug, Clone, Default)]
pub struct SparseRows {
    pub rows: usize,
    pub row: Vec<i64>,
    pub col: Vec<i64>,
    pub val: Vec<f32>,
}

impl SparseRows {
    /// The L2-normalised binary rows of `items` (each user's items, sorted), with dropout:
    /// each entry is kept with probability `1 - dropout` and then scaled by `1 / (1 - dropout)`
    /// (TensorFlow's `dropout`, as in the paper's code). `rng` is only used when `dropout > 0`.
    pub fn normalised(items: &[&[u32]], dropout: f64, rng: &mut Rng) -> SparseRows {
        let mut s = SparseRows {
            rows: items.len(),
            ..SparseRows::default()
        };
        for (r, row) in items.iter().enumerate() {
            if row.is_empty() {
                continue;
            }
            let v = 1.0 / (row.len() as f64).sqrt();
            for &i in row.iter() {
                let keep = dropout <= 0.0
                    || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 >= dropout;
                if keep {
                    s.row.push(r as i64);
                    s.col.push(i as i64);
                    s.val.push((v / (1.0 - dropout.max(0.0))) as f32);
                }
            }
        }
        s
    }
}

/// The terms of the loss of a batch (means over the batch's users).
pub struct VaeLoss {
    /// `nll + beta * kl`, for the backward pass
    pub value: Tensor<1>,
    /// -sum_i x_i log softmax(logits)_i
    pub nll: f64,
    /// KL(q(z|x) || N(0, I))
    pub kl: f64,
}

fn xavier(rng: &mut Rng, fan_in: usize, fan_out: usize, device: &Device) -> Param<Tensor<2>> {
    let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
    let v: Vec<f32> = (0..fan_in * fan_out)
        .map(|_| ((2.0 * (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 1.0) * a) as f32)
        .collect();
    Param::from_tensor(Tensor::from_data(
        TensorData::new(v, [fan_in, fan_out]),
        device,
    ))
}

fn bias(rng: &mut Rng, n: usize, device: &Device) -> Param<Tensor<1>> {
    Param::from_tensor(Tensor::from_data(
        TensorData::new(normal(rng, n, 0.001), [n]),
        device,
    ))
}

impl MultiVae {
    /// Xavier-uniform weights and N(0, 0.001^2) biases (the paper's code), from `seed`.
    pub fn new(items: usize, hidden: usize, latent: usize, seed: u64, device: &Device) -> MultiVae {
        let mut rng = Rng::new(seed ^ 0x6d75_6c74_6976_6165);
        MultiVae {
            enc_w1: xavier(&mut rng, items, hidden, device),
            enc_b1: bias(&mut rng, hidden, device),
            enc_w2: xavier(&mut rng, hidden, 2 * latent, device),
            enc_b2: bias(&mut rng, 2 * latent, device),
            dec_w1: xavier(&mut rng, latent, hidden, device),
            dec_b1: bias(&mut rng, hidden, device),
            dec_w2: xavier(&mut rng, hidden, items, device),
            dec_b2: bias(&mut rng, items, device),
        }
    }

    /// (items, hidden, latent)
    pub fn dims(&self) -> (usize, usize, usize) {
        let [items, hidden] = self.enc_w1.val().dims();
        (items, hidden, self.dec_w1.val().dims()[0])
    }

    /// The posterior's mean and log-variance.
    ///
    /// # Shapes
    /// - output: (`[rows, latent]`, `[rows, latent]`)
    pub fn encode(&self, x: &SparseRows) -> (Tensor<2>, Tensor<2>) {
        let (_, hidden, latent) = self.dims();
        let w1 = self.enc_w1.val();
        let device = w1.device();
        let mut h = Tensor::<2>::zeros([x.rows, hidden], &device);
        if !x.row.is_empty() {
            let n = x.row.len();
            let col = Tensor::<1, Int>::from_data(TensorData::new(x.col.clone(), [n]), &device);
            let row = Tensor::<1, Int>::from_data(TensorData::new(x.row.clone(), [n]), &device);
            let val = Tensor::<2>::from_data(TensorData::new(x.val.clone(), [n, 1]), &device);
            let rows = w1.select(0, col) * val; // [nnz, hidden]
            h = h.select_assign(0, row, rows, IndexingUpdateOp::Add); // x W1: [rows, hidden]
        }
        let h = (h + self.enc_b1.val().unsqueeze_dim::<2>(0)).tanh();
        let out = h.matmul(self.enc_w2.val()) + self.enc_b2.val().unsqueeze_dim::<2>(0); // [rows, 2 latent]
        let mu = out.clone().narrow(1, 0, latent);
        let logvar = out.narrow(1, latent, latent);
        (mu, logvar)
    }

    /// Logits over all items.
    ///
    /// # Shapes
    /// - z: `[rows, latent]`
    /// - output: `[rows, items]`
    pub fn decode(&self, z: Tensor<2>) -> Tensor<2> {
        let h = (z.matmul(self.dec_w1.val()) + self.dec_b1.val().unsqueeze_dim::<2>(0)).tanh();
        h.matmul(self.dec_w2.val()) + self.dec_b2.val().unsqueeze_dim::<2>(0)
    }

    /// Scores for recommendation: the decoder at the posterior mean, no dropout.
    ///
    /// # Shapes
    /// - output: `[rows, items]`
    pub fn scores(&self, x: &SparseRows) -> Tensor<2> {
        let (mu, _) = self.encode(x);
        self.decode(mu)
    }

    /// The negative ELBO of a batch, averaged over its users: the encoder reads `input` (the
    /// normalised, dropped-out rows), the multinomial likelihood is of `targets` (each user's
    /// full item list), z = mu + eps * exp(logvar / 2).
    ///
    /// # Shapes
    /// - eps: `[rows, latent]`
    pub fn loss(
        &self,
        input: &SparseRows,
        targets: &[&[u32]],
        eps: Tensor<2>,
        beta: f64,
    ) -> VaeLoss {
        let (items, _, _) = self.dims();
        let rows = input.rows;
        let (mu, logvar) = self.encode(input);
        let z = mu.clone() + eps * logvar.clone().mul_scalar(0.5).exp();
        let logp = log_softmax(self.decode(z), 1).reshape([rows * items]); // [rows * items]
        let flat: Vec<i64> = targets
            .iter()
            .enumerate()
            .flat_map(|(r, t)| t.iter().map(move |&i| (r * items) as i64 + i as i64))
            .collect();
        let device = mu.device();
        let n = flat.len();
        let nll = if n == 0 {
            Tensor::<1>::zeros([1], &device)
        } else {
            let idx = Tensor::<1, Int>::from_data(TensorData::new(flat, [n]), &device);
            logp.select(0, idx).sum().neg().div_scalar(rows as f64)
        };
        let kl = (logvar.clone().neg() + logvar.exp() + mu.clone() * mu)
            .sub_scalar(1.0)
            .mul_scalar(0.5)
            .sum()
            .div_scalar(rows as f64);
        let value = nll.clone() + kl.clone().mul_scalar(beta);
        VaeLoss {
            value,
            nll: nll.into_scalar::<f32>() as f64,
            kl: kl.into_scalar::<f32>() as f64,
        }
    }
}
