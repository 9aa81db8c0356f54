// `lookalike prepare`: the optional files a library or a store searches with, each built on
// request; `lookalike index` then keeps the library's ones current. The names these steps had
// before they were grouped (`build-index`, `train-hash`, `prepare-verify`, `prepare-rerank`) still
// run them, hidden from the help.
import ArgumentParser
import LookalikeCommandLine

struct PrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Build optional files searches use: approximate indexes, hash encoders, visual words, a store's re-ranking.",
        subcommands: [BuildIndexCommand.self, TrainHashCommand.self, PrepareVerifyCommand.self, PrepareRerankCommand.self])
}

/// An earlier top-level name of a `prepare` step.
struct BuildIndexAlias: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "build-index", abstract: "Same as `prepare index`.", shouldDisplay: false)
    @OptionGroup var command: BuildIndexCommand
    func run() throws { try command.run() }
}

struct TrainHashAlias: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train-hash", abstract: "Same as `prepare hash`.", shouldDisplay: false)
    @OptionGroup var command: TrainHashCommand
    func run() throws { try command.run() }
}

struct PrepareVerifyAlias: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prepare-verify", abstract: "Same as `prepare verify`.", shouldDisplay: false)
    @OptionGroup var command: PrepareVerifyCommand
    func run() throws { try command.run() }
}

struct PrepareRerankAlias: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prepare-rerank", abstract: "Same as `prepare rerank`.", shouldDisplay: false)
    @OptionGroup var command: PrepareRerankCommand
    func run() async throws { try await command.run() }
}
