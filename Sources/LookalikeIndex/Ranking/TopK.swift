// Top-K selection, the one every scan and re-rank uses: the k smallest distances out of n in
// O(n log k) with a bounded max-heap (the seeds sorted everything with a bubble sort). Most
// candidates are rejected by one comparison with the current k-th best, so a scan over a million
// scores costs about as much as reading them.
import HeapModule

struct HeapEntry: Comparable {
    var distance: Float
    var index: Int
    // Ties broken by position so results are deterministic.
    static func < (a: HeapEntry, b: HeapEntry) -> Bool {
        a.distance != b.distance ? a.distance < b.distance : a.index < b.index
    }
}

/// The k smallest (value, position) pairs seen so far; ties broken by position.
struct BoundedHeap {
    let k: Int
    private var heap = Heap<HeapEntry>()

    init(k: Int) {
        self.k = k
        heap.reserveCapacity(k + 1)
    }

    /// Offers a candidate; `skip` is asked only for candidates that would enter the heap.
    @inline(__always)
    mutating func offer(_ value: Float, _ index: Int, skip: (Int) -> Bool) {
        if value.isNaN || k <= 0 { return }
        let entry = HeapEntry(distance: value, index: index)
        if heap.count == k, let worst = heap.max, !(entry < worst) { return }
        if skip(index) { return }
        heap.insert(entry)
        if heap.count > k { _ = heap.popMax() }
    }

    /// The entries, nearest first.
    func sorted() -> [HeapEntry] {
        var copy = heap
        var out: [HeapEntry] = []
        out.reserveCapacity(copy.count)
        while let e = copy.popMin() { out.append(e) }
        return out
    }
}
