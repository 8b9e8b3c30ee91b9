//! The pipe's entry point: capture the environment, run, exit with the documented code.

fn main() -> std::process::ExitCode {
    s3_deploy_pipe::tune_allocator();
    let env = s3_deploy_pipe::config::Env::from_process();
    std::process::ExitCode::from(s3_deploy_pipe::main_with_env(env))
}
