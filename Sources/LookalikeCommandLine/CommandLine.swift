// What the two command-line programs share (`lookalike` and `lookalike-bench`): the --db option,
// stderr output, JSON encoding, and text tables.
import ArgumentParser
import COpenBLASCore
import Foundation

extension ParsableCommand {
    /// The programs' entry: ArgumentParser's own, after making sure OpenBLAS runs the kernels this
    /// CPU can (see COpenBLASCore: on a VM it may have chosen SSE3 kernels for an AVX-512 CPU).
    public static func runAsRoot() async {
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

public struct DatabaseOption: ParsableArguments {
    @Option(name: .long, help: "The library database.")
    public var db: String = "lookalike.db"

    public init() {}
}

/// An error already reported to the user; exits with the given status.
public struct Failure: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
    public init(message: String) { self.message = message }
}

public enum Console {
    public static func error(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    public static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    public static var stderrIsTerminal: Bool { isatty(STDERR_FILENO) != 0 }
    public static var stdoutIsTerminal: Bool { isatty(STDOUT_FILENO) != 0 }
}

public func format(_ value: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", value) }

public func duration(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
}

/// Left-aligned text table.
public func table(_ header: [String], _ rows: [[String]], rightAligned: Set<Int> = []) -> String {
    var widths = header.map(\.count)
    for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, cell in
            let pad = String(repeating: " ", count: widths[i] - cell.count)
            return rightAligned.contains(i) ? pad + cell : cell + pad
        }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
    }
    return ([line(header)] + rows.map(line)).joined(separator: "\n")
}
