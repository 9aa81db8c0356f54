// `lookalike embed`: embeds image files and prints, per image, its size, the embedding's norm, the
// top-5 ImageNet labels and the time since the previous result (files are decoded and embedded on
// every core, in order). Failures go to stderr; the exit status is 1 if any failed.
import ArgumentParser
import Foundation
import LookalikeCatalogue
import LookalikeCommandLine
import LookalikeEngine
import LookalikeEvaluation
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed", abstract: "Embed images and show their top-5 ImageNet labels.")

    @Argument(help: "Image files.")
    var images: [String]

    @Flag(help: "Print JSON (one array) instead of text.")
    var json = false

    @Option(help: "Weights file (default: $LOOKALIKE_MODEL or models/efficientnet-lite0.lkw).")
    var model: String?

    struct Output: Encodable, Sendable {
        struct Top: Encodable, Sendable { let `class`: Int; let label: String; let prob: Float }
        let path: String
        var width: Int?
        var height: Int?
        var norm: Float?
        var top5: [Top]?
        var ms: Double?
        var error: String?
    }

    @Option(help: "Worker threads (each decodes and runs the network); default: one per core.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func run() throws {
        let embedder = try Embedder(weightsURL: model.map { URL(fileURLWithPath: $0) }, threads: max(1, threads))
        // The engine's pipelined batch API: every core decodes and embeds; results arrive in order.
        let collected = Locked<[Output]>([])
        let json = self.json
        let started = Locked(Date())
        embedder.embedFiles(images) { _, path, result in
            let ms = started.withLock { t -> Double in
                let now = Date()
                defer { t = now }
                return now.timeIntervalSince(t) * 1000
            }
            switch result {
            case .success(let (image, embedding)):
                let norm = embedding.feature.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
                let top5 = embedding.top5.map { Output.Top(class: $0.classId, label: $0.name, prob: $0.probability) }
                collected.withLock { $0.append(Output(path: path, width: image.width, height: image.height, norm: norm, top5: top5, ms: ms)) }
                if !json {
                    print("\(path)  \(image.width)x\(image.height)  norm \(format(Double(norm), 3))  \(format(ms)) ms")
                    for t in top5 { print("  \(String(format: "%4d", t.class))  \(format(Double(t.prob), 3))  \(t.label)") }
                }
            case .failure(let error):
                collected.withLock { $0.append(Output(path: path, error: String(describing: error))) }
                Console.error("error: \(error)")
            }
        }
        let outputs = collected.value
        if json { print(try Console.json(outputs)) }
        if outputs.contains(where: { $0.error != nil }) { throw ExitCode(1) }
    }
}
