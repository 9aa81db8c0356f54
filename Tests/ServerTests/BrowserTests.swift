// The web page end to end in a real browser: `lookalike serve --port 0` (the built executable) on
// the sample library, driven by scripts/browser_test.py (Selenium + headless Chromium, both
// installed by `make setup`). Screenshots land in out/screenshots/. Skipped, with the reason, only
// when Chromium is not installed. Also checks the server stops cleanly on SIGTERM.
import Foundation
import LookalikeEngine
import LookalikeCatalogue
import LookalikeEvaluation
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized) struct BrowserTests {
    static let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }

    static func executable() throws -> URL {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("lookalike"),
            ServerFixture.packageRoot.appendingPathComponent(".build/debug/lookalike"),
        ]
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw CatalogueError("lookalike executable not found next to the tests (build it with `swift build`)")
        }
        return found
    }

    @Test(.enabled(if: chromium != nil, "Chromium is not installed (`make setup` installs chromium and chromium-driver): browser test skipped"))
    func pageInARealBrowser() async throws {
        let server = Process()
        server.executableURL = try Self.executable()
        server.arguments = ["serve", "--db", try ServerFixture.libraryPath(), "--port", "0"]
        server.currentDirectoryURL = ServerFixture.packageRoot
        let output = Pipe()
        server.standardOutput = output
        server.standardError = FileHandle.nullDevice
        let printed = Locked("")
        output.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            printed.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try server.run()
        defer { if server.isRunning { server.terminate() } }

        // The server prints its address once it listens.
        var base: String?
        for _ in 0..<300 where base == nil {
            try await Task.sleep(for: .milliseconds(100))
            if let line = printed.value.split(separator: "\n").first(where: { $0.contains("serving") }),
               let range = line.range(of: "http://") {
                base = String(line[range.lowerBound...].split(separator: "/", omittingEmptySubsequences: false).prefix(3).joined(separator: "/"))
            }
            #expect(server.isRunning, "the server exited early: \(printed.value)")
            if !server.isRunning { return }
        }
        let url = try #require(base, "the server did not say where it listens: \(printed.value)")

        let driver = Process()
        driver.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        driver.arguments = ["python3", "scripts/browser_test.py", "--base", url,
                            "--upload", ServerFixture.queries.appendingPathComponent("pizza_0010.jpg").path,
                            "--screenshots", ServerFixture.packageRoot.appendingPathComponent("out/screenshots").path,
                            "--chromium", Self.chromium ?? "/usr/bin/chromium"]
        driver.currentDirectoryURL = ServerFixture.packageRoot
        let log = Pipe()
        driver.standardOutput = log
        driver.standardError = log
        try driver.run()
        let transcript = String(decoding: log.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        driver.waitUntilExit()
        #expect(driver.terminationStatus == 0, "browser test failed:\n\(transcript)")
        print(transcript)

        // Graceful shutdown on SIGTERM: the process ends by itself, with status 0.
        kill(server.processIdentifier, SIGTERM)
        for _ in 0..<100 where server.isRunning { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!server.isRunning, "the server did not stop on SIGTERM")
        if !server.isRunning { #expect(server.terminationStatus == 0) }
        output.fileHandleForReading.readabilityHandler = nil
    }
}
