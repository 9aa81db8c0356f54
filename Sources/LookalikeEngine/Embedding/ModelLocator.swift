// ModelLocator owns finding the converted weights file: $LOOKALIKE_MODEL, then
// ./models/efficientnet-lite0.lkw, then models/efficientnet-lite0.lkw in the executable's directory
// and each of its parents, then in each parent of the current directory, then where the Debian
// package installs them (/usr/share/lookalike/models/efficientnet-lite0.lkw).
import Foundation

public struct ModelNotFoundError: Error, CustomStringConvertible, Sendable {
    public let searched: [String]
    public var description: String {
        "model weights not found: run `make setup` (it converts the weights into models/\(ModelLocator.fileName)) "
            + "or set LOOKALIKE_MODEL to the .lkw file. Looked in: " + searched.joined(separator: ", ")
    }
}

public enum ModelLocator {
    public static let fileName = "efficientnet-lite0.lkw"
    public static let environmentVariable = "LOOKALIKE_MODEL"
    /// Where the Debian package installs the weights (as models/\(fileName) under it): the last place looked.
    public static let installedDirectory = "/usr/share/lookalike"

    public static func defaultWeightsURL() throws -> URL {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment[environmentVariable], !env.isEmpty {
            // An explicit choice is honoured even when wrong, so the error names that file.
            return URL(fileURLWithPath: env)
        }
        var searched: [String] = []
        func probe(_ dir: URL) -> URL? {
            let candidate = dir.appendingPathComponent("models").appendingPathComponent(fileName).standardizedFileURL
            if searched.contains(candidate.path) { return nil }
            searched.append(candidate.path)
            return fm.isReadableFile(atPath: candidate.path) ? candidate : nil
        }
        func walkUp(from start: URL) -> URL? {
            var dir = start.standardizedFileURL
            for _ in 0..<12 {
                if let found = probe(dir) { return found }
                let parent = dir.deletingLastPathComponent()
                if parent.path == dir.path { break }
                dir = parent
            }
            return nil
        }
        let cwd = URL(fileURLWithPath: fm.currentDirectoryPath, isDirectory: true)
        if let found = probe(cwd) { return found }
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "", relativeTo: cwd).resolvingSymlinksInPath()
        if let found = walkUp(from: exe.deletingLastPathComponent()) { return found }
        if let found = walkUp(from: Bundle.main.bundleURL) { return found }
        if let found = walkUp(from: cwd) { return found }
        if let found = probe(URL(fileURLWithPath: installedDirectory, isDirectory: true)) { return found }
        throw ModelNotFoundError(searched: searched)
    }
}
