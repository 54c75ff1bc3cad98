fn main() {
    std::process::exit(cllm4rec_pipe::cli::main());
}
