// The `lookalike` command: one thin type per subcommand (in Commands/), each parsing its options
// and calling the library. Errors print as one clear line on stderr with a non-zero exit status.
import ArgumentParser
import LookalikeCommandLine
import LookalikeEngine

@main
struct Lookalike: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lookalike",
        abstract: "Reverse image search: index a folder of images, then search it with an example image.",
        discussion: """
            Typical use:
              lookalike index ~/Pictures            # build or update ./lookalike.db
              lookalike search photo.jpg -k 10      # the 10 most similar images
              lookalike search --path ~/Pictures/a.jpg
              lookalike serve                       # web app + API at http://127.0.0.1:8080/
            """,
        version: LookalikeVersion.string,
        subcommands: [
            EmbedCommand.self, IndexCommand.self, SearchCommand.self, DedupeCommand.self,
            ExportCommand.self, InfoCommand.self, EvalCommand.self, ServeCommand.self, PrepareCommand.self,
            BuildIndexAlias.self, TrainHashAlias.self, PrepareVerifyAlias.self, PrepareRerankAlias.self,
        ]
    )

    /// OpenBLAS told the kernels this CPU runs first (`runAsRoot`).
    static func main() async { await runAsRoot() }
}
