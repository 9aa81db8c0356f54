// The hand-written OpenAPI description (Assets/openapi.json, served at /openapi.json) against the
// routes the router really has: the same paths with the same methods, both ways, and every
// operation documents its answers.
import Foundation
import Hummingbird
import HummingbirdTesting
@testable import LookalikeServer
import Testing

@Suite struct OpenAPITests {
    @Test func describesExactlyTheRegisteredRoutes() async throws {
        let services = try ServerFixture.services { $0.token = "token-for-the-routes" }
        let router = LookalikeServer.buildRouter(services: services)
        let registered = Set(router.routes.map { "\($0.method.rawValue) \($0.path.description)" })
        #expect(registered.count > 10)

        let app = Application(router: router)
        try await app.test(.router) { client in
            let response = try await client.execute(uri: "/openapi.json", method: .get)
            #expect(response.status == .ok)
            let spec = try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
            #expect((spec["openapi"] as? String)?.hasPrefix("3.") == true)
            let paths = try #require(spec["paths"] as? [String: [String: Any]])
            var described = Set<String>()
            for (path, operations) in paths {
                for (method, operation) in operations where ["get", "post", "put", "delete", "patch", "head"].contains(method) {
                    described.insert("\(method.uppercased()) \(path)")
                    let responses = (operation as? [String: Any])?["responses"] as? [String: Any]
                    #expect(responses?.isEmpty == false, "\(method) \(path) documents no responses")
                }
            }
            #expect(registered.subtracting(described).isEmpty, "routes missing from openapi.json: \(registered.subtracting(described).sorted())")
            #expect(described.subtracting(registered).isEmpty, "openapi.json describes routes that do not exist: \(described.subtracting(registered).sorted())")
        }
    }
}
