// `lookalike embed`: embeds image files and prints, per image, its size, the embedding's norm, the
// top-5 ImageNet labels and the time taken. Failures go to stderr; the exit status is 1 if any failed.
import ArgumentParser
import Foundation
import LookalikeEngine

struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed", abstract: "Embed images and show their top-5 ImageNet labels.")

    @Argument(help: "Image files.")
    var images: [String]

    @Flag(help: "Print JSON (one array) instead of text.")
    var json = false

    @Option(help: "Weights file (default: $LOOKALIKE_MODEL or models/efficientnet-lite0.lkw).")
    var model: String?

    struct Output: Encodable {
        struct Top: Encodable { let `class`: Int; let label: String; let prob: Float }
        let path: String
        var width: Int?
        var height: Int?
        var norm: Float?
        var top5: [Top]?
        var ms: Double?
        var error: String?
    }

    func run() throws {
        let embedder = try Embedder(weightsURL: model.map { URL(fileURLWithPath: $0) })
        var outputs: [Output] = []
        var failed = 0
        for path in images {
            let started = Date()
            do {
                let (image, embedding) = try embedder.embed(path: path)
                let ms = Date().timeIntervalSince(started) * 1000
                let norm = embedding.feature.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
                let top5 = embedding.top5.map { Output.Top(class: $0.classId, label: $0.name, prob: $0.probability) }
                outputs.append(Output(path: path, width: image.width, height: image.height, norm: norm, top5: top5, ms: ms))
                if !json {
                    print("\(path)  \(image.width)x\(image.height)  norm \(format(Double(norm), 3))  \(format(ms)) ms")
                    for t in top5 { print("  \(String(format: "%4d", t.class))  \(format(Double(t.prob), 3))  \(t.label)") }
                }
            } catch {
                failed += 1
                outputs.append(Output(path: path, error: String(describing: error)))
                Console.error("error: \(error)")
            }
        }
        if json { print(try Console.json(outputs)) }
        if failed > 0 { throw ExitCode(1) }
    }
}
