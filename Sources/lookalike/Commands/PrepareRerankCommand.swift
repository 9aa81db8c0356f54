// `lookalike prepare rerank --store`: builds the re-ranking companion of a Milvus collection
// (StoreReranking), so searches over the store re-rank as the local library does. Run once the
// indexing workers have pushed (and again after later pushes: until then searches fall back to
// query expansion and say so).
import ArgumentParser
import Foundation
import LookalikeCatalogue
import LookalikeCommandLine
import LookalikeEngine
import LookalikeEvaluation
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

struct PrepareRerankCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rerank",
        abstract: "Prepare a store's re-ranking (augmented vectors, diffusion graph facts) for searches over it.",
        discussion: """
            Reads every vector of the collection once, finds each image's exact neighbours in memory \
            (like the local `index`: augmentation up to \(DatabaseAugmentation.maximumFullBuild) images, \
            diffusion up to \(DiffusionGraph.maximumGraph)), and replaces the companion collection \
            COLLECTION_rerank with each image's augmented vector and diffusion facts. Searches and \
            `serve --store` use it while it covers the collection (the same number of images); after \
            workers push or prune, run this again. Exit status 2 when the store failed.
            """)

    @Option(help: "The collection filled by `index --store`: milvus://HOST:PORT/COLLECTION.")
    var store: String

    @Option(help: "The re-ranking to prepare (its dba and diff steps; qe needs nothing prepared).")
    var rerank: String = Reranking.libraryDefault.description

    @Option(help: "Rows per insert request.")
    var storeBatch: Int = 512

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        do { _ = try MilvusAddress(parsing: store) } catch { throw ValidationError(String(describing: error)) }
        do { _ = try Reranking(parsing: rerank) } catch { throw ValidationError("--rerank: \(error)") }
        guard storeBatch > 0 else { throw ValidationError("--store-batch must be positive") }
    }

    func run() async throws {
        let address = try MilvusAddress(parsing: store)
        let options = try Reranking(parsing: rerank)
        let summary: StoreReranking.Summary
        var progress: (@Sendable (String) -> Void)?
        if !json { progress = { @Sendable message in Console.error(message) } }
        do {
            summary = try await StoreReranking.prepare(library: address, options: options, batchSize: storeBatch, progress: progress)
        } catch {
            Console.error("error: \(error)")
            throw ExitCode(2)
        }
        if json {
            print(try Console.json(summary))
        } else {
            for note in summary.notes { Console.error("note: \(note)") }
            print("store \(summary.store): \(summary.reranking) prepared for \(summary.images) images in \(summary.companion) "
                  + "(read \(format(summary.readSeconds, 1)) s, neighbours \(format(summary.neighbourSeconds, 1)) s, "
                  + "write \(format(summary.writeSeconds, 1)) s)")
        }
    }
}
