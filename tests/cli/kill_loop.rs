//! `kill -9` of the runner at random moments, 50 times over a sweep of fast `command` stages.
//! After every kill nothing that looks complete is incomplete (`verify` finds no damaged or
//! missing object; an object committed just before its record is only orphaned, and adopted
//! by the next run), and every finished round gives the output hashes of an uninterrupted run.
//! The moments come from a seeded generator; the seed is printed, and
//! `CLLM4REC_KILL_SEED=<seed>` replays a run.

use std::time::{Duration, Instant};

use crate::support::{walk_files, Env};

const KILLS: usize = 50;
const KILLS_PER_ROUND: usize = 5;

/// 18 instances: gen -> work x 12 (a 4 x 3 matrix, 11..43 ms each, 64 KiB outputs in a
/// subfolder) -> per_a x 4 (each gathers its 3 points) -> final (gathers all). `round` goes
/// into gen's output and on into every other stage's, so every round commits 18 new entries.
const CHAOS: &str = r#"name: chaos
params:
  round: 0
matrix:
  a: [1, 2, 3, 4]
  b: [1, 2, 3]
stages:
  gen:
    kind: command
    cmd: [sh, -c, 'sleep 0.02; seq 100 > $CLLM4REC_OUT/rows; echo round ${params.round} >> $CLLM4REC_OUT/rows']
  work:
    kind: command
    needs: [gen]
    params: {a: '${matrix.a}', b: '${matrix.b}'}
    cmd: [sh, -c, 'sleep 0.0${params.a}${params.b}; mkdir $CLLM4REC_OUT/d; head -n ${params.a}${params.b} $CLLM4REC_IN_GEN/rows > $CLLM4REC_OUT/d/part; tail -n 1 $CLLM4REC_IN_GEN/rows >> $CLLM4REC_OUT/d/part; yes ${params.a}${params.b} | head -c 65536 > $CLLM4REC_OUT/d/blob; cp $CLLM4REC_PARAMS $CLLM4REC_OUT/p.json']
  per_a:
    kind: command
    needs: ["work[*]"]
    params: {a: '${matrix.a}'}
    cmd: [sh, -c, 'sleep 0.01; cat $CLLM4REC_IN_WORK/*/d/part | sort > $CLLM4REC_OUT/merged']
  final:
    kind: command
    needs: ["per_a[*]"]
    cmd: [sh, -c, 'cat $CLLM4REC_IN_PER_A/*/merged | wc -l > $CLLM4REC_OUT/count; ls $CLLM4REC_IN_PER_A > $CLLM4REC_OUT/points']
"#;

/// xorshift64*: enough for spreading kill moments, and replayable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// `verify`'s problem lines other than orphans (which a kill between an object's rename and
/// its record may leave, and which are harmless).
fn damage(e: &Env) -> Vec<String> {
    let v = e.run(&["verify"]);
    v.stdout()
        .lines()
        .filter(|l| !l.starts_with("orphaned") && !l.contains("objects verified, no problems"))
        .filter(|l| !l.contains(" problem(s) in "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn kill_9_at_random_moments_never_leaves_an_incomplete_entry() {
    let seed: u64 = std::env::var("CLLM4REC_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("kill loop: seed {seed} (CLLM4REC_KILL_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let e = Env::new();
    e.write("chaos.yaml", CHAOS);
    let args = |round: usize| {
        vec![
            "run".to_owned(),
            "chaos.yaml".to_owned(),
            "-j".to_owned(),
            "2".to_owned(),
            "--set".to_owned(),
            format!("params.round={round}"),
        ]
    };
    let run = |round: usize, cache: &str| {
        let a = args(round);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        e.run_cache(&a, cache)
    };

    // An uninterrupted run of round 0 gives the time scale of the kills.
    let t0 = Instant::now();
    let first = run(0, "cache-ref-0").ok();
    let full_ms = t0.elapsed().as_millis() as u64;
    assert_eq!(first.counts(), (18, 0));
    println!("kill loop: an uninterrupted run takes {full_ms} ms");

    let (mut interrupted, mut orphans_seen, mut round_start) = (0, 0, 0);
    let mut records_at_kill = Vec::new();
    let (mut round, mut kills_in_round) = (0, 0);
    for k in 0..KILLS {
        if kills_in_round == 0 {
            round_start = e.records("cache");
        }
        let a = args(round);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let mut child = e
            .command(&a)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Aim at what is left of the round (each run resumes the last one's work).
        let left = |e: &Env| 18 - (e.records("cache") - round_start).min(18) as u64;
        let delay = 1 + rng.below(10 + full_ms * left(&e) / 18);
        std::thread::sleep(Duration::from_millis(delay));
        match child.try_wait().unwrap() {
            None => interrupted += 1,
            Some(st) if !st.success() => {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                panic!("kill {k} (seed {seed}): the run failed on its own ({st}):\n{err}");
            }
            Some(_) => {}
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        records_at_kill.push(e.records("cache"));

        let bad = damage(&e);
        assert!(
            bad.is_empty(),
            "kill {k} (seed {seed}, after {delay} ms) left damage:\n{}",
            bad.join("\n")
        );
        let v = e.run(&["verify"]).stdout();
        orphans_seen += v.lines().filter(|l| l.starts_with("orphaned")).count();

        kills_in_round += 1;
        if kills_in_round == KILLS_PER_ROUND || left(&e) == 0 || k == KILLS - 1 {
            // Finish the round: the same hashes as an uninterrupted run, a clean store.
            let done = run(round, "cache").ok();
            let reference = if round == 0 {
                first.outputs()
            } else {
                run(round, &format!("cache-ref-{round}")).ok().outputs()
            };
            assert_eq!(
                done.outputs(),
                reference,
                "round {round} (seed {seed}): hashes differ from an uninterrupted run"
            );
            let v = e.run(&["verify"]);
            assert_eq!(v.code(), 0, "round {round} (seed {seed}):\n{}", v.stdout());
            assert!(
                walk_files(&e.path("cache/tmp")).is_empty(),
                "work folders left after round {round}"
            );
            round += 1;
            kills_in_round = 0;
        }
    }
    // gc clears what the kills left: orphans, work folders, half-written temp files.
    e.run(&["gc"]).ok();
    let leftovers: Vec<_> = walk_files(&e.path("cache"))
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    e.run(&["verify"]).ok();
    println!(
        "kill loop: {KILLS} kills in {round} rounds, {interrupted} interrupted a running pipeline, \
         {orphans_seen} orphaned object(s) seen (adopted later); records after each kill: \
         {records_at_kill:?}"
    );
    // The loop is only a test if most kills hit a run in progress.
    assert!(
        interrupted >= KILLS / 2,
        "only {interrupted} of {KILLS} kills interrupted a run (seed {seed})"
    );
}
