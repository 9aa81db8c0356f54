// `lookalike-bench`: the benchmark and research commands, apart from the product (`make bench`
// runs them through scripts/bench*.py, which print each figure beside the reference peer's).
// `robustness` measures retrieval quality under edits; `engine`, `search` and `ann` measure speed.
import ArgumentParser
import COpenBLASCore
import LookalikeCommandLine
import LookalikeEngine

@main
struct LookalikeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lookalike-bench",
        abstract: "Benchmarks of Lookalike: retrieval under edits, the engine, exact and approximate search.",
        version: LookalikeVersion.string,
        subcommands: [RobustnessCommand.self, BenchEngineCommand.self, BenchSearchCommand.self, BenchANNCommand.self]
    )

    /// As `lookalike`: OpenBLAS told the kernels this CPU runs before anything is measured.
    static func main() async {
        _ = lk_openblas_reexec_with_native_core(CommandLine.unsafeArgv)
        do {
            var command = try parseAsRoot()
            if var asynchronous = command as? AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
