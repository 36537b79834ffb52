//! `lockstep`: see `lockstep --help`.

use clap::Parser;

// The local runner allocates per request on every worker thread; mimalloc
// keeps that off a shared lock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = lockstep_cli::Cli::parse();
    let json = cli.json;
    match lockstep_cli::run(cli).await {
        Ok(report) => {
            println!("{}", report.render(json));
            std::process::ExitCode::SUCCESS
        }
        Err(e) => match e.downcast_ref::<lockstep_cli::Unsuccessful>() {
            Some(lockstep_cli::Unsuccessful(report)) => {
                println!("{}", report.render(json));
                std::process::ExitCode::from(2)
            }
            None => {
                eprintln!("error: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}
