// The HTTP API through HummingbirdTesting (the whole router, no port): every route, paging and
// filters, each error status with its JSON message, an oversized and a non-image upload, unknown
// ids, traversal attempts, the token on and off, thumbnails with ETags, and the page itself.
import Foundation
import Hummingbird
import HummingbirdTesting
import LookalikeEngine
import LookalikeCatalogue
import LookalikeEvaluation
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch
@testable import LookalikeServer
import Testing
import LookalikeVerification

@Suite struct APITests {
    @Test func pagingAndFilters() async throws {
        let app = ServerFixture.app(try ServerFixture.services())
        try await app.test(.router) { client in
            let first = try await client.execute(uri: "/api/images?per_page=10", method: .get).json(Page.self)
            #expect(first.total == 36 && first.pages == 4 && first.items.count == 10 && first.page == 1)
            let last = try await client.execute(uri: "/api/images?per_page=10&page=4", method: .get).json(Page.self)
            #expect(last.items.count == 6)
            #expect(Set(first.items.map(\.id)).isDisjoint(with: last.items.map(\.id)))
            let beyond = try await client.execute(uri: "/api/images?per_page=10&page=9", method: .get).json(Page.self)
            #expect(beyond.items.isEmpty && beyond.total == 36)
            // Paths are relative to the library's folder, never absolute.
            #expect(first.items.allSatisfy { $0.path.hasPrefix("library/") && !$0.path.hasPrefix("/") })
            #expect(first.items.allSatisfy { $0.thumbnail == "/api/images/\($0.id)/thumbnail" && !$0.tags.isEmpty })

            let pizza = try await client.execute(uri: "/api/images?label=pizza", method: .get).json(Page.self)
            #expect(pizza.total == 6 && pizza.items.allSatisfy { $0.label == "pizza" })
            // q matches labels or tags: "Motor" finds the Motorbikes label, "pizza" the label and tags.
            let motor = try await client.execute(uri: "/api/images?q=motor", method: .get).json(Page.self)
            #expect(motor.total >= 6 && motor.items.contains { $0.label == "Motorbikes" })
            let tagged = try await client.execute(uri: "/api/images?q=airliner", method: .get).json(Page.self)
            #expect(tagged.total > 0 && tagged.items.allSatisfy { $0.tags.contains { $0.name.contains("airliner") } || $0.label.contains("airliner") })
            let none = try await client.execute(uri: "/api/images?q=zzzz_nothing", method: .get).json(Page.self)
            #expect(none.total == 0 && none.items.isEmpty)

            let bad = try await client.execute(uri: "/api/images?per_page=0", method: .get)
            #expect(bad.status == .badRequest && bad.error?.contains("per_page") == true)
            let badPage = try await client.execute(uri: "/api/images?page=abc", method: .get)
            #expect(badPage.status == .badRequest && badPage.error?.contains("page") == true)
        }
    }

    @Test func detailsThumbnailAndFile() async throws {
        let app = ServerFixture.app(try ServerFixture.services())
        try await app.test(.router) { client in
            let id = try await client.execute(uri: "/api/images?label=dalmatian&per_page=1", method: .get).json(Page.self).items[0].id
            let details = try await client.execute(uri: "/api/images/\(id)", method: .get)
            #expect(details.status == .ok)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(buffer: details.body)) as? [String: Any])
            #expect(object["label"] as? String == "dalmatian")
            #expect((object["path"] as? String)?.hasPrefix("library/dalmatian/") == true)
            #expect(object["content_type"] as? String == "image/jpeg")
            #expect((object["metadata"] as? [String: Any])?["gps_hidden"] as? Bool == false)
            #expect(object["duplicates"] is [Any])

            let thumb = try await client.execute(uri: "/api/images/\(id)/thumbnail", method: .get)
            #expect(thumb.status == .ok && thumb.headers[.contentType] == "image/jpeg")
            let bytes = [UInt8](buffer: thumb.body)
            #expect(bytes.prefix(3) == [0xFF, 0xD8, 0xFF])
            let etag = try #require(thumb.headers[.eTag])
            #expect(thumb.headers[.cacheControl]?.contains("max-age") == true)
            let again = try await client.execute(uri: "/api/images/\(id)/thumbnail", method: .get, headers: [.ifNoneMatch: etag])
            #expect(again.status == .notModified)
            let small = try await client.execute(uri: "/api/images/\(id)/thumbnail?size=160", method: .get)
            #expect(small.status == .ok && small.body.readableBytes < thumb.body.readableBytes)
            let odd = try await client.execute(uri: "/api/images/\(id)/thumbnail?size=333", method: .get)
            #expect(odd.status == .badRequest && odd.error?.contains("size") == true)

            let file = try await client.execute(uri: "/api/images/\(id)/file", method: .get)
            #expect(file.status == .ok && file.headers[.contentType] == "image/jpeg")
            let original = try Data(contentsOf: ServerFixture.samples.appendingPathComponent("dalmatian").appendingPathComponent("image_0001.jpg"))
            #expect(file.body.readableBytes > 1000)
            #expect(try await client.execute(uri: "/api/images?label=dalmatian&per_page=1", method: .get).json(Page.self).items[0].path
                    == "library/dalmatian/image_0001.jpg" ? Data(buffer: file.body) == original : true)

            for uri in ["/api/images/999999", "/api/images/999999/thumbnail", "/api/images/999999/file"] {
                let missing = try await client.execute(uri: uri, method: .get)
                #expect(missing.status == .notFound, "\(uri)")
                #expect(missing.error?.isEmpty == false)
            }
        }
    }

    @Test func evaluationReportIsServedWhenPresent() async throws {
        let dir = try FileManager.default.url(for: .itemReplacementDirectory, in: .userDomainMask,
                                              appropriateFor: URL(fileURLWithPath: NSTemporaryDirectory()), create: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("copy.db")
        try FileManager.default.copyItem(atPath: try ServerFixture.libraryPath(), toPath: db.path)
        let services = try ServerFixture.services(db: db.path)
        let app = ServerFixture.app(services)
        try await app.test(.router) { client in
            let missing = try await client.execute(uri: "/report", method: .get)
            #expect(missing.status == .notFound && missing.error?.contains("lookalike eval") == true)
            let library = try LiveLibrary(catalogue: try #require(services.local).catalogue)
            var options = EvaluationOptions()
            options.k = 3
            options.reranking = .none
            let report = try await Evaluator.run(library: library, options: options)
            let copy = EvaluationHTML.libraryCopy(for: try #require(services.local).catalogue)
            try FileManager.default.createDirectory(at: copy.deletingLastPathComponent(), withIntermediateDirectories: true)
            try EvaluationHTML.render(report, thumbnails: ReportThumbnails(catalogue: try #require(services.local).catalogue)).write(to: copy, atomically: true, encoding: .utf8)
            let served = try await client.execute(uri: "/report", method: .get)
            #expect(served.status == .ok)
            #expect(String(buffer: served.body).contains("Retrieval evaluation"))
        }
    }

    @Test func traversalAttemptsReachNoFile() async throws {
        let app = ServerFixture.app(try ServerFixture.services())
        try await app.test(.router) { client in
            for uri in ["/api/images/..%2f..%2fetc%2fpasswd/file", "/api/images/..%2F..%2F..%2Fetc%2Fpasswd/thumbnail",
                        "/api/images/%2e%2e/file", "/api/images/-1/file", "/api/images/1%2f..%2f2/file"] {
                let response = try await client.execute(uri: uri, method: .get)
                #expect(response.status == .badRequest || response.status == .notFound, "\(uri)")
                #expect(!response.text.contains("root:"), "\(uri)")
                #expect(response.headers[.contentType]?.hasPrefix("application/json") == true, "\(uri)")
            }
            for uri in ["/..%2f..%2fetc/passwd", "/../../etc/passwd", "/app.js/..%2f..%2fetc%2fpasswd", "/%2e%2e/%2e%2e/etc/passwd"] {
                let response = try await client.execute(uri: uri, method: .get)
                #expect(response.status == .notFound, "\(uri)")
                #expect(!response.text.contains("root:"), "\(uri)")
            }
        }
    }

    @Test func searchByIdRandomAndRestrictions() async throws {
        let services = try ServerFixture.services()
        let app = ServerFixture.app(services)
        try await app.test(.router) { client in
            let id = try await client.execute(uri: "/api/images?label=sunflower&per_page=1", method: .get).json(Page.self).items[0].id
            let answer = try await client.execute(uri: "/api/search?id=\(id)&k=5", method: .get).json(Answer.self)
            #expect(answer.query.kind == "id" && answer.query.id == id && answer.query.label == "sunflower")
            #expect(answer.count == 5 && answer.results.map(\.rank) == [1, 2, 3, 4, 5])
            #expect(!answer.results.contains { $0.id == id })
            #expect(answer.results.filter { $0.label == "sunflower" }.count >= 4)
            #expect(answer.results.allSatisfy { $0.thumbnail == "/api/images/\($0.id)/thumbnail" && !$0.path.hasPrefix("/") })
            // Re-ranked by default: ordered by score, which reads in order; the raw cosine beside it.
            #expect(answer.reranking == Reranking.libraryDefault.description)
            #expect(zip(answer.results, answer.results.dropFirst()).allSatisfy { $0.score >= $1.score })
            #expect(answer.results.allSatisfy { $0.cosine > 0 && $0.cosine <= 1 })
            let plain = try await client.execute(uri: "/api/search?id=\(id)&k=5&rerank=none", method: .get).json(Answer.self)
            #expect(plain.reranking == "none")
            #expect(zip(plain.results, plain.results.dropFirst()).allSatisfy { $0.score >= $1.score })
            let bad = try await client.execute(uri: "/api/search?id=\(id)&rerank=magic", method: .get)
            #expect(bad.status == .badRequest)
            #expect(answer.ms > 0 && answer.metric == "cosine" && answer.method == "exact" && answer.k == 5)

            let chi = try await client.execute(uri: "/api/search?id=\(id)&k=3&metric=chi2", method: .get).json(Answer.self)
            #expect(chi.metric == "chi2" && chi.count == 3)
            let f16 = try await client.execute(uri: "/api/search?id=\(id)&k=3&method=exact:f16", method: .get).json(Answer.self)
            #expect(f16.method == "exact:f16" && f16.results.map(\.id) == Array(answer.results.prefix(3)).map(\.id))

            // Restricted to another label: only that label comes back.
            let restricted = try await client.execute(uri: "/api/search?id=\(id)&k=10&label=pizza", method: .get).json(Answer.self)
            #expect(restricted.count == 6 && restricted.results.allSatisfy { $0.label == "pizza" })
            let folder = try await client.execute(uri: "/api/search?id=\(id)&k=10&folder=library/airplanes", method: .get).json(Answer.self)
            #expect(folder.count > 0 && folder.results.allSatisfy { $0.path.hasPrefix("library/airplanes/") })
            let badFolder = try await client.execute(uri: "/api/search?id=\(id)&folder=library/../..", method: .get)
            #expect(badFolder.status == .badRequest && badFolder.error?.contains("folder") == true)
            // A min_score nothing reaches: an empty answer that says so, not an error.
            let strict = try await client.execute(uri: "/api/search?id=\(id)&min_score=0.999", method: .get).json(Answer.self)
            #expect(strict.count == 0 && strict.note?.contains("no close match") == true)
            let loose = try await client.execute(uri: "/api/search?id=\(id)&k=20&min_score=0.5", method: .get).json(Answer.self)
            #expect(loose.results.allSatisfy { $0.score >= 0.5 })

            let random = try await client.execute(uri: "/api/random?k=4", method: .get).json(Answer.self)
            #expect(random.query.kind == "random" && random.query.id != nil && random.count == 4)

            for (uri, field) in [("/api/search", "id"), ("/api/search?id=abc", "id"), ("/api/search?id=\(id)&k=0", "k"),
                                 ("/api/search?id=\(id)&k=101", "k"), ("/api/search?id=\(id)&metric=hamming", "metric"),
                                 ("/api/search?id=\(id)&method=nosuch:32", "method"), ("/api/search?id=\(id)&min_score=x", "min_score"),
                                 ("/api/search?id=\(id)&box=0.5,0.5,0.9,0.9", "box"), ("/api/search?id=\(id)&box=1,2", "box")] {
                let response = try await client.execute(uri: uri, method: .get)
                #expect(response.status == .badRequest, "\(uri)")
                #expect(response.error?.hasPrefix(field) == true, "\(uri): \(response.error ?? "")")
            }
            let unknown = try await client.execute(uri: "/api/search?id=999999", method: .get)
            #expect(unknown.status == .notFound && unknown.error?.contains("999999") == true)
        }
        #expect(try #require(services.local).batcher.statistics.queries > 0)
    }

    @Test func libraryImagesAreAnsweredFromTheAnswerLists() async throws {
        // The fixture library was indexed with the writer's step, so it has answer lists: once the
        // server has read them (off the request path), a click on a library image reads its answer
        // there, and it is the answer a server that computes every search gives.
        let reading = ServerFixture.app(try ServerFixture.services())
        let computing = ServerFixture.app(try ServerFixture.services { $0.answerLists = false })
        let computed = try await computing.test(.router) { client in
            var computed: [Int64: Answer] = [:]
            for item in try await client.execute(uri: "/api/images?per_page=100", method: .get).json(Page.self).items {
                let answer = try await client.execute(uri: "/api/search?id=\(item.id)&k=12", method: .get).json(Answer.self)
                #expect(!answer.precomputed)
                computed[item.id] = answer
            }
            return computed
        }
        #expect(computed.count == 36)
        try await reading.test(.router) { client in
            let first = try #require(computed.keys.min())
            var tries = 0
            while try await !client.execute(uri: "/api/search?id=\(first)&k=12", method: .get).json(Answer.self).precomputed, tries < 100 {
                try await Task.sleep(nanoseconds: 50_000_000)
                tries += 1
            }
            for (id, expected) in computed {
                let answer = try await client.execute(uri: "/api/search?id=\(id)&k=12", method: .get).json(Answer.self)
                #expect(answer.precomputed, "image \(id)")
                // The same list; its scores as stored (a batch's kernels round a little differently).
                #expect(answer.results.map(\.id) == expected.results.map(\.id)
                        && zip(answer.results, expected.results).allSatisfy { abs($0.score - $1.score) < 1e-4 && $0.cosine == $1.cosine },
                        "image \(id)")
                #expect(answer.reranking == expected.reranking && answer.results.map(\.rank) == Array(1...12))
            }
            // Restricted, plain or another metric: computed.
            for extra in ["&label=pizza", "&rerank=none", "&metric=chi2", "&method=exact:f16", "&rerank=dba:15+qe:5+diff:30"] {
                #expect(try await !client.execute(uri: "/api/search?id=\(first)&k=5\(extra)", method: .get).json(Answer.self).precomputed, "\(extra)")
            }
            // Another re-ranking asked for in between does not cost the default its lists.
            #expect(try await client.execute(uri: "/api/search?id=\(first)&k=5", method: .get).json(Answer.self).precomputed)
        }
    }

    @Test func kAboveTheDefaultCapWhenRaised() async throws {
        let app = ServerFixture.app(try ServerFixture.services { $0.maxK = 200 })
        try await app.test(.router) { client in
            let id = try await client.execute(uri: "/api/images?per_page=1", method: .get).json(Page.self).items[0].id
            let answer = try await client.execute(uri: "/api/search?id=\(id)&k=150", method: .get).json(Answer.self)
            #expect(answer.count == 35)  // everything but the query
            #expect(try await client.execute(uri: "/api/search?id=\(id)&k=201", method: .get).status == .badRequest)
        }
    }

    @Test func uploadSearches() async throws {
        let app = ServerFixture.app(try ServerFixture.services { $0.maxUploadBytes = 1024 * 1024 })
        try await app.test(.router) { client in
            let jpeg = try ServerFixture.query("airplanes_0010.jpg")
            let (body, type) = ServerFixture.multipart(jpeg)
            let multipart = try await client.execute(uri: "/api/search?k=5", method: .post, headers: [.contentType: type], body: body)
            #expect(multipart.status == .ok, "\(multipart.text)")
            let answer = try multipart.json(Answer.self)
            #expect(answer.query.kind == "upload" && answer.query.summary.contains("query.jpg") && answer.query.width != nil)
            #expect(answer.results.filter { $0.label == "airplanes" }.count >= 4)
            #expect(!answer.query.tags.isEmpty)

            let raw = try await client.execute(uri: "/api/search?k=5&name=plane.jpg", method: .post,
                                               headers: [.contentType: "image/jpeg"], body: ByteBuffer(bytes: jpeg))
            let rawAnswer = try raw.json(Answer.self)
            #expect(rawAnswer.results.map(\.id) == answer.results.map(\.id))

            #expect(answer.results.allSatisfy { $0.inliers == nil })

            // verify: a captioned copy of a library photo finds the photo first, marked as verified.
            let photo = ServerFixture.samples.appendingPathComponent("pizza/image_0002.jpg").path
            let captioned = try #require(Transformation.standard.first { $0.name == "three lines of text" }).apply(toFile: photo)
            let verified = try await client.execute(uri: "/api/search?k=5&verify=20", method: .post,
                                                    headers: [.contentType: "image/jpeg"], body: ByteBuffer(bytes: captioned)).json(Answer.self)
            #expect(verified.results.first?.path.hasSuffix("pizza/image_0002.jpg") == true)
            #expect((verified.results.first?.inliers ?? 0) >= SpatialVerifier.minimumInliers)
            #expect(verified.reranking.hasSuffix("verify:20") && verified.results.count == 5)
            #expect(try await client.execute(uri: "/api/search?verify=many", method: .post,
                                             headers: [.contentType: "image/jpeg"], body: ByteBuffer(bytes: jpeg)).status == .badRequest)

            // A box: the left half of the photo (the answer changes, the label mostly stays).
            let boxed = try await client.execute(uri: "/api/search?k=5&box=0,0,0.5,1", method: .post,
                                                 headers: [.contentType: "image/jpeg"], body: ByteBuffer(bytes: jpeg))
            let boxAnswer = try boxed.json(Answer.self)
            #expect(boxAnswer.query.box == "0.0000,0.0000,0.5000,1.0000")
            #expect(boxAnswer.results.map(\.score) != answer.results.map(\.score))

            // Not an image (by content, whatever its name and type claim): 415.
            let text = ServerFixture.multipart(Array("just some text, not a photo\n".utf8), filename: "notes.jpg")
            let notImage = try await client.execute(uri: "/api/search", method: .post, headers: [.contentType: text.contentType], body: text.body)
            #expect(notImage.status == .unsupportedMediaType && notImage.error?.contains("not an image") == true)
            // Too large (1 MB limit here), with and without Content-Length: 413.
            let big = [UInt8](repeating: 0xFF, count: 1024 * 1024 + 40_000)
            let tooLarge = try await client.execute(uri: "/api/search", method: .post, headers: [.contentType: "image/jpeg"], body: ByteBuffer(bytes: big))
            #expect(tooLarge.status == .contentTooLarge && tooLarge.error?.contains("limit") == true)
            let declared = try await client.execute(uri: "/api/search", method: .post,
                                                    headers: [.contentType: "image/jpeg", .contentLength: String(big.count)], body: ByteBuffer(bytes: big))
            #expect(declared.status == .contentTooLarge)
            // Empty body: 400. A truncated JPEG: 422.
            let empty = try await client.execute(uri: "/api/search", method: .post)
            #expect(empty.status == .badRequest && empty.error?.hasPrefix("image") == true)
            let truncated = try await client.execute(uri: "/api/search", method: .post, headers: [.contentType: "image/jpeg"],
                                                     body: ByteBuffer(bytes: jpeg.prefix(jpeg.count / 3)))
            #expect(truncated.status == .unprocessableContent, "\(truncated.text)")
            let noBoundary = try await client.execute(uri: "/api/search", method: .post, headers: [.contentType: "multipart/form-data"],
                                                      body: ByteBuffer(string: "x"))
            #expect(noBoundary.status == .badRequest)
        }
    }

    @Test func urlSearchesRefusePrivateAddresses() async throws {
        let app = ServerFixture.app(try ServerFixture.services())
        try await app.test(.router) { client in
            for url in ["http://127.0.0.1:9/x.jpg", "http://localhost/x.jpg", "http://169.254.169.254/latest/meta-data",
                        "http://10.1.2.3/a.jpg", "http://[::1]/a.jpg", "http://0.0.0.0/a.jpg", "http://192.168.1.1/a.jpg"] {
                let encoded = url.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? url
                let response = try await client.execute(uri: "/api/search?url=\(encoded)", method: .post)
                #expect(response.status == .forbidden, "\(url): \(response.text)")
                #expect(response.error?.contains("refused") == true)
            }
            let notURL = try await client.execute(uri: "/api/search?url=file%3A%2F%2F%2Fetc%2Fpasswd", method: .post)
            #expect(notURL.status == .badRequest && notURL.error?.hasPrefix("url") == true)
        }
    }

    @Test func statsDuplicatesAndPage() async throws {
        let app = ServerFixture.app(try ServerFixture.services())
        try await app.test(.router) { client in
            let stats = try await client.execute(uri: "/api/stats", method: .get)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(buffer: stats.body)) as? [String: Any])
            #expect(object["images"] as? Int == 36 && object["searchable"] as? Int == 36)
            #expect((object["labels"] as? [[String: Any]])?.count == 6)
            #expect(object["methods"] as? [String] == IndexFactory.names)
            #expect((object["metrics"] as? [[String: Any]])?.count == Metric.allCases.count)
            #expect((object["library_bytes"] as? Int ?? 0) > 0 && object["model"] as? String == "efficientnet-lite0/whole+rmac")
            #expect(object["folders"] as? [String] == ["library"])

            let duplicates = try await client.execute(uri: "/api/duplicates?threshold=0.3", method: .get)
            let groups = try #require(try JSONSerialization.jsonObject(with: Data(buffer: duplicates.body)) as? [String: Any])
            #expect(groups["threshold"] as? Double ?? 0 > 0.29)
            #expect(groups["groups"] is [Any])
            let badThreshold = try await client.execute(uri: "/api/duplicates?threshold=2", method: .get)
            #expect(badThreshold.status == .badRequest && badThreshold.error?.hasPrefix("threshold") == true)

            let page = try await client.execute(uri: "/", method: .get)
            #expect(page.status == .ok && page.text.contains("<title>Lookalike</title>"))
            #expect(page.headers[.contentSecurityPolicy]?.contains("default-src 'self'") == true)
            let etag = try #require(page.headers[.eTag])
            #expect(try await client.execute(uri: "/", method: .get, headers: [.ifNoneMatch: etag]).status == .notModified)
            #expect(try await client.execute(uri: "/app.js", method: .get).headers[.contentType]?.hasPrefix("text/javascript") == true)
            #expect(try await client.execute(uri: "/app.css", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/login", method: .get).status == .seeOther)  // no token: nothing to log in to
            let unknown = try await client.execute(uri: "/api/nothing", method: .get)
            #expect(unknown.status == .notFound && unknown.error?.contains("no such route") == true)
        }
    }

    @Test func tokenGuardsTheAPI() async throws {
        let token = "correct horse battery"
        let app = ServerFixture.app(try ServerFixture.services { $0.token = token })
        try await app.test(.router) { client in
            for uri in ["/api/stats", "/api/images", "/api/random", "/api/images/1/thumbnail"] {
                let denied = try await client.execute(uri: uri, method: .get)
                #expect(denied.status == .unauthorized, "\(uri)")
                #expect(denied.headers[.wwwAuthenticate] == "Bearer")
            }
            let wrong = try await client.execute(uri: "/api/stats", method: .get, headers: [.authorization: "Bearer nope"])
            #expect(wrong.status == .unauthorized)
            let bearer = try await client.execute(uri: "/api/stats", method: .get, headers: [.authorization: "Bearer \(token)"])
            #expect(bearer.status == .ok)
            // The page and the login form are public; logging in sets the cookie that the API accepts.
            #expect(try await client.execute(uri: "/", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/login", method: .get).status == .ok)
            let bad = try await client.execute(uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                               body: ByteBuffer(string: "token=guess"))
            #expect(bad.status == .unauthorized && bad.text.contains("not right"))
            let login = try await client.execute(uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                                 body: ByteBuffer(string: "token=correct+horse+battery"))
            #expect(login.status == .seeOther)
            let cookie = try #require(login.headers[.setCookie]?.split(separator: ";").first.map(String.init))
            #expect(login.headers[.setCookie]?.contains("HttpOnly") == true)
            let withCookie = try await client.execute(uri: "/api/stats", method: .get, headers: [.cookie: cookie])
            #expect(withCookie.status == .ok)
        }
    }

    @Test func followsChangesMadeByAnotherIndexer() async throws {
        // A library of two labels; a second catalogue (as `lookalike index` in another process
        // would) adds a third; the server sees it after a refresh, without a restart.
        let dir = try ServerFixture.tempDir()
        let db = dir.appendingPathComponent("live.db").path
        let folders = ["pizza", "dalmatian", "airplanes"].map { ServerFixture.samples.appendingPathComponent($0).path }
        _ = try Indexer(catalogue: try Catalogue(path: db), embedder: try ServerFixture.embedder()).run(roots: Array(folders.prefix(2)))
        let services = try ServerFixture.services(db: db)
        let app = ServerFixture.app(services)
        try await app.test(.router) { client in
            let before = try await client.execute(uri: "/api/images?label=airplanes", method: .get).json(Page.self)
            #expect(before.total == 0)
            _ = try Indexer(catalogue: try Catalogue(path: db), embedder: try ServerFixture.embedder()).run(roots: folders)
            try #require(services.local).library.refresh()
            let after = try await client.execute(uri: "/api/images?label=airplanes", method: .get).json(Page.self)
            #expect(after.total == 6)
            let answer = try await client.execute(uri: "/api/search?id=\(after.items[0].id)&k=5", method: .get).json(Answer.self)
            #expect(answer.results.filter { $0.label == "airplanes" }.count >= 4)
        }
    }

    @Test func searchAnswersWrittenByHandEqualJSONEncodersOutput() throws {
        // The hand-written search answer must parse to what JSONEncoder writes for the same value:
        // escapes (quote, backslash, control characters, non-ASCII), omitted nils, numbers.
        let tags = [Tag(name: "tabby, \"cat\"", probability: 0.8125), Tag(name: "naïve\\ 猫\n\t\u{01}", probability: 1e-7)]
        let query = QuerySummary(kind: "upload", id: nil, summary: "a/b.jpg (jpeg, 12 bytes)", label: nil, path: nil,
                                 thumbnail: nil, width: 640, height: nil, tags: tags, box: "0.1,0.2,0.5,0.5")
        let results = (0..<3).map { i in
            ResultItem(rank: i + 1, id: Int64(i) * 1_000_000_007, path: "101_ObjectCategories/é/\(i).jpg", label: "lab\"el",
                       tags: i == 0 ? [] : tags, score: Float(i) * -0.3333 + 1, distance: Float(i) * 0.3333, cosine: 0.5,
                       thumbnail: "/api/images/\(i)/thumbnail")
        }
        for note in [nil, "no close match: \"x\""] as [String?] {
            let answer = SearchResponse(query: query, k: 20, metric: "cosine", method: "exact", reranking: "dba:15+qe:10",
                                        precomputed: note == nil, requested: "dba:15+qe:10+diff:30",
                                        notes: note == nil ? [] : ["diff:30 not applied: \"why\"\n"], minScore: note == nil ? nil : 0.25, ms: 12.3456789, searchMs: 1e-3, embedMs: 0,
                                        count: results.count, results: note == nil ? results : [], note: note)
            let written = try JSONSerialization.jsonObject(with: Data(answer.json)) as? NSDictionary
            let encoded = try JSONSerialization.jsonObject(with: try SearchResponse.encoder.encode(answer)) as? NSDictionary
            #expect(written != nil)
            #expect(written == encoded)
        }
    }

    @Test func resultPresentationFollowsTheStoredPathAndTags() throws {
        // Results' shown paths and tags are remembered per image, but only while the image's
        // stored path and tags are the ones they were made from.
        let services = try ServerFixture.services()
        let root = try #require(services.served.folders().roots.first)
        let first = services.presentation(id: 7, path: root + "/pizza/a.jpg", tags: "pizza:0.9; plate:0.05")
        #expect(first.path.hasSuffix("/pizza/a.jpg") && !first.path.hasPrefix("/"))
        #expect(first.tags.map(\.name) == ["pizza", "plate"])
        let renamed = services.presentation(id: 7, path: root + "/pizza/b.jpg", tags: "pizza:0.9; plate:0.05")
        #expect(renamed.path.hasSuffix("/pizza/b.jpg"))
        let retagged = services.presentation(id: 7, path: root + "/pizza/b.jpg", tags: "bagel:0.7")
        #expect(retagged.tags.map(\.name) == ["bagel"] && retagged.tags.first?.probability == 0.7)
        let shownPrivately = try ServerFixture.services { $0.showPrivate = true }
        #expect(shownPrivately.presentation(id: 7, path: root + "/pizza/b.jpg", tags: "").path == root + "/pizza/b.jpg")
    }
}

