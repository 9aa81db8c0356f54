// `lookalike-bench`: the benchmark and research commands, apart from the product (`make bench`
// runs them through scripts/bench*.py, which print each figure beside the reference peer's).
// `robustness` measures retrieval quality under edits; `engine`, `search` and `ann` measure speed.
import ArgumentParser
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

    /// OpenBLAS told the kernels this CPU runs first (`runAsRoot`).
    static func main() async { await runAsRoot() }
}
