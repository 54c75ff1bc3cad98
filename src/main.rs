fn main() {
    cllm4rec_pipe::util::tune_allocator();
    cllm4rec_pipe::util::single_threaded_matrixmultiply();
    std::process::exit(cllm4rec_pipe::cli::main());
}
