fn main() {
    cllm4rec_pipe::util::tune_allocator();
    std::process::exit(cllm4rec_pipe::cli::main());
}
