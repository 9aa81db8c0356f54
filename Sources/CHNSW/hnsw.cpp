// The C API of include/CHNSW.h over hnswlib's HierarchicalNSW<float>. Three things are Lookalike's
// own: the distance (inner product through a dot-product kernel built per CPU level with
// target_clones, so one binary runs everywhere and uses AVX-512 where present, instead of
// hnswlib's compile-time #ifdef __AVX512F__), a search that takes its beam width per call
// (hnswlib 0.6's searchKnn reads a shared ef_, which concurrent searches with different widths
// would race on) and scores a node's links four at a time on every level, and (de)serialisation
// to memory in hnswlib's saveIndex layout, so the graph is the payload of an IndexFile and covered
// by its checksum.
#include "CHNSW.h"
#include <hnswlib/hnswlib.h>
#include <algorithm>
#include <cstring>
#include <exception>
#include <limits>
#include <queue>
#include <xmmintrin.h>
#include <mutex>
#include <thread>
#include <vector>

namespace {

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
float dot_distance(const void *a, const void *b, const void *param) {
    const float *x = static_cast<const float *>(a), *y = static_cast<const float *>(b);
    const size_t n = *static_cast<const size_t *>(param);
    // Sixteen partial sums so the compiler can keep them in vector lanes without -ffast-math.
    float s[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (size_t j = 0; j < 16; j++) s[j] += x[i + j] * y[i + j];
    float t = 0;
    for (size_t j = 0; j < 16; j++) t += s[j];
    for (; i < n; i++) t += x[i] * y[i];
    return 1.0f - t;
}

/// Four inner products against one query in one pass. The level-0 search below scores a node's
/// unvisited neighbours four at a time: four vectors streamed together keep four memory reads in
/// flight where one distance at a time waits on each vector's cache misses in turn (faiss's
/// HNSW does the same with its distances_batch_4), and the query is loaded once for all four.
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
void dot4_distance(const float *q, const float *a, const float *b, const float *c, const float *d, size_t n,
                   float out[4]) {
    float sa[16] = {0}, sb[16] = {0}, sc[16] = {0}, sd[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (size_t j = 0; j < 16; j++) {
            const float x = q[i + j];
            sa[j] += x * a[i + j];
            sb[j] += x * b[i + j];
            sc[j] += x * c[i + j];
            sd[j] += x * d[i + j];
        }
    float ta = 0, tb = 0, tc = 0, td = 0;
    for (size_t j = 0; j < 16; j++) {
        ta += sa[j];
        tb += sb[j];
        tc += sc[j];
        td += sd[j];
    }
    for (; i < n; i++) {
        ta += q[i] * a[i];
        tb += q[i] * b[i];
        tc += q[i] * c[i];
        td += q[i] * d[i];
    }
    out[0] = 1.0f - ta;
    out[1] = 1.0f - tb;
    out[2] = 1.0f - tc;
    out[3] = 1.0f - td;
}

using Graph = hnswlib::HierarchicalNSW<float>;
using Scored = std::pair<float, hnswlib::tableint>;
using ScoredQueue = std::priority_queue<Scored, std::vector<Scored>, Graph::CompareByFirst>;

/// hnswlib 0.6.2's searchBaseLayerST (same beam, same stopping rule, tombstoned nodes walked but
/// not returned) with the neighbours of each expanded node gathered first, prefetched, and scored
/// four at a time by dot4_distance. Same answers as hnswlib's up to float rounding.
template <bool hasDeletions>
ScoredQueue searchLevel0(const Graph *g, hnswlib::tableint entry, const float *query, size_t ef, size_t dim) {
    hnswlib::VisitedList *vl = g->visited_list_pool_->getFreeVisitedList();
    hnswlib::vl_type *visited = vl->mass;
    const hnswlib::vl_type tag = vl->curV;
    ScoredQueue top, candidates;
    auto vector = [&](hnswlib::tableint id) { return reinterpret_cast<const float *>(g->getDataByInternalId(id)); };
    float lowerBound;
    const float d0 = g->fstdistfunc_(query, vector(entry), g->dist_func_param_);
    if (!hasDeletions || !g->isMarkedDeleted(entry)) {
        lowerBound = d0;
        top.emplace(d0, entry);
        candidates.emplace(-d0, entry);
    } else {
        lowerBound = std::numeric_limits<float>::max();
        candidates.emplace(-lowerBound, entry);
    }
    visited[entry] = tag;
    std::vector<hnswlib::tableint> fresh(g->maxM0_ + 4);
    const size_t count = g->cur_element_count;
    auto consider = [&](hnswlib::tableint id, float dist) {
        if (top.size() < ef || lowerBound > dist) {
            candidates.emplace(-dist, id);
            if (!hasDeletions || !g->isMarkedDeleted(id)) top.emplace(dist, id);
            if (top.size() > ef) top.pop();
            if (!top.empty()) lowerBound = top.top().first;
        }
    };
    while (!candidates.empty()) {
        const Scored current = candidates.top();
        if (-current.first > lowerBound && (top.size() == ef || !hasDeletions)) break;
        candidates.pop();
        hnswlib::linklistsizeint *links = g->get_linklist0(current.second);
        const size_t size = g->getListCount(links);
        size_t n = 0;
        for (size_t j = 1; j <= size; j++) {
            const hnswlib::tableint id = links[j];
            if (id >= count) throw std::runtime_error("hnsw graph links out of range");
            if (visited[id] == tag) continue;
            visited[id] = tag;
            _mm_prefetch(reinterpret_cast<const char *>(vector(id)), _MM_HINT_T0);
            fresh[n++] = id;
        }
        size_t j = 0;
        for (; j + 4 <= n; j += 4) {
            float dist[4];
            dot4_distance(query, vector(fresh[j]), vector(fresh[j + 1]), vector(fresh[j + 2]), vector(fresh[j + 3]), dim, dist);
            for (size_t t = 0; t < 4; t++) consider(fresh[j + t], dist[t]);
        }
        for (; j < n; j++) consider(fresh[j], g->fstdistfunc_(query, vector(fresh[j]), g->dist_func_param_));
    }
    g->visited_list_pool_->releaseVisitedList(vl);
    return top;
}

class DotSpace : public hnswlib::SpaceInterface<float> {
public:
    explicit DotSpace(size_t dim) : dim_(dim) {}
    size_t get_data_size() override { return dim_ * sizeof(float); }
    hnswlib::DISTFUNC<float> get_dist_func() override { return dot_distance; }
    void *get_dist_func_param() override { return &dim_; }
private:
    size_t dim_;
};

void fail(char *error, size_t length, const char *message) {
    if (error && length > 0) {
        std::strncpy(error, message, length - 1);
        error[length - 1] = 0;
    }
}

/// Bounds-checked reader over the serialised buffer.
struct Reader {
    const char *p;
    size_t left;
    template <typename T> void pod(T &value) {
        if (left < sizeof(T)) throw std::runtime_error("hnsw payload truncated");
        std::memcpy(&value, p, sizeof(T));
        p += sizeof(T);
        left -= sizeof(T);
    }
    void bytes(void *dst, size_t n) {
        if (left < n) throw std::runtime_error("hnsw payload truncated");
        std::memcpy(dst, p, n);
        p += n;
        left -= n;
    }
};

struct Writer {
    char *p;
    size_t left;
    template <typename T> void pod(const T &value) { bytes(&value, sizeof(T)); }
    void bytes(const void *src, size_t n) {
        if (left < n) throw std::runtime_error("hnsw buffer too small");
        std::memcpy(p, src, n);
        p += n;
        left -= n;
    }
};

} // namespace

struct lk_hnsw {
    DotSpace space;
    hnswlib::HierarchicalNSW<float> *graph = nullptr;
    std::mutex grow;
    explicit lk_hnsw(size_t dim) : space(dim) {}
    ~lk_hnsw() { delete graph; }
};

extern "C" {

lk_hnsw *lk_hnsw_create(size_t dim, size_t capacity, size_t M, size_t efConstruction, size_t seed, char *error, size_t errorLength) {
    try {
        auto *h = new lk_hnsw(dim);
        h->graph = new hnswlib::HierarchicalNSW<float>(&h->space, std::max<size_t>(capacity, 16), M, efConstruction, seed);
        return h;
    } catch (const std::exception &e) {
        fail(error, errorLength, e.what());
        return nullptr;
    }
}

void lk_hnsw_free(lk_hnsw *h) { delete h; }

int lk_hnsw_add(lk_hnsw *h, const uint64_t *labels, const float *vectors, size_t n, size_t threads, char *error, size_t errorLength) {
    try {
        auto *g = h->graph;
        {
            // Room for every new label up front (resizeIndex must not run beside insertions).
            size_t fresh = 0;
            for (size_t i = 0; i < n; i++) fresh += g->label_lookup_.count(labels[i]) == 0;
            size_t need = g->cur_element_count + fresh;
            if (need > g->max_elements_) g->resizeIndex(std::max(need, g->max_elements_ * 2));
        }
        const size_t dim = *static_cast<size_t *>(h->space.get_dist_func_param());
        threads = std::max<size_t>(1, std::min(threads, n / 256 + 1));
        std::atomic<size_t> next(0);
        std::exception_ptr failure;
        std::mutex failureLock;
        auto work = [&]() {
            for (;;) {
                size_t i = next.fetch_add(1);
                if (i >= n) return;
                try {
                    g->addPoint(vectors + i * dim, labels[i]);
                } catch (...) {
                    std::lock_guard<std::mutex> lock(failureLock);
                    if (!failure) failure = std::current_exception();
                    next.store(n);
                    return;
                }
            }
        };
        if (threads == 1) {
            work();
        } else {
            std::vector<std::thread> pool;
            for (size_t t = 0; t < threads; t++) pool.emplace_back(work);
            for (auto &t : pool) t.join();
        }
        if (failure) std::rethrow_exception(failure);
        return 0;
    } catch (const std::exception &e) {
        fail(error, errorLength, e.what());
        return -1;
    }
}

int lk_hnsw_mark_deleted(lk_hnsw *h, uint64_t label) {
    auto *g = h->graph;
    auto found = g->label_lookup_.find(label);
    if (found == g->label_lookup_.end() || g->isMarkedDeleted(found->second)) return 0;
    g->markDeletedInternal(found->second);
    return 1;
}

long lk_hnsw_search(const lk_hnsw *h, const float *query, size_t k, size_t ef, uint64_t *labels, float *distances,
                    char *error, size_t errorLength) {
    try {
        const auto *g = h->graph;
        if (g->cur_element_count == 0 || k == 0) return 0;
        // searchKnn of hnswlib 0.6.2 with `ef` passed in instead of read from the shared ef_.
        // The greedy descent through the upper levels, each node's links scored four at a time
        // like level 0 (at a small efSearch the descent is a large part of a query's distances).
        const size_t dim = *static_cast<const size_t *>(g->dist_func_param_);
        auto vector = [&](hnswlib::tableint id) { return reinterpret_cast<const float *>(g->getDataByInternalId(id)); };
        hnswlib::tableint current = g->enterpoint_node_;
        float best = g->fstdistfunc_(query, vector(current), g->dist_func_param_);
        for (int level = g->maxlevel_; level > 0; level--) {
            bool changed = true;
            while (changed) {
                changed = false;
                unsigned int *data = (unsigned int *)g->get_linklist(current, level);
                const int size = g->getListCount(data);
                const auto *links = (const hnswlib::tableint *)(data + 1);
                for (int i = 0; i < size; i++) {
                    if (links[i] >= g->cur_element_count) throw std::runtime_error("hnsw graph links out of range");
                    _mm_prefetch(reinterpret_cast<const char *>(vector(links[i])), _MM_HINT_T0);
                }
                hnswlib::tableint next = current;
                int i = 0;
                for (; i + 4 <= size; i += 4) {
                    float d[4];
                    dot4_distance(query, vector(links[i]), vector(links[i + 1]), vector(links[i + 2]), vector(links[i + 3]), dim, d);
                    for (int t = 0; t < 4; t++)
                        if (d[t] < best) { best = d[t]; next = links[i + t]; }
                }
                for (; i < size; i++) {
                    const float d = g->fstdistfunc_(query, vector(links[i]), g->dist_func_param_);
                    if (d < best) { best = d; next = links[i]; }
                }
                if (next != current) { current = next; changed = true; }
            }
        }
        auto top = g->num_deleted_
            ? searchLevel0<true>(g, current, query, std::max(ef, k), dim)
            : searchLevel0<false>(g, current, query, std::max(ef, k), dim);
        while (top.size() > k) top.pop();
        long found = (long)top.size();
        for (long i = found - 1; i >= 0; i--) {
            labels[i] = g->getExternalLabel(top.top().second);
            distances[i] = top.top().first;
            top.pop();
        }
        return found;
    } catch (const std::exception &e) {
        fail(error, errorLength, e.what());
        return -1;
    }
}

size_t lk_hnsw_count(const lk_hnsw *h) { return h->graph->cur_element_count; }
size_t lk_hnsw_deleted(const lk_hnsw *h) { return h->graph->num_deleted_; }
size_t lk_hnsw_dim(const lk_hnsw *h) { return *static_cast<const size_t *>(const_cast<DotSpace &>(h->space).get_dist_func_param()); }
size_t lk_hnsw_live_labels(const lk_hnsw *h, uint64_t *labels, size_t capacity) {
    const auto *g = h->graph;
    size_t n = 0;
    for (size_t i = 0; i < g->cur_element_count && n < capacity; i++)
        if (!g->isMarkedDeleted((hnswlib::tableint)i)) labels[n++] = g->getExternalLabel((hnswlib::tableint)i);
    return n;
}

size_t lk_hnsw_M(const lk_hnsw *h) { return h->graph->M_; }
size_t lk_hnsw_ef_construction(const lk_hnsw *h) { return h->graph->ef_construction_; }

size_t lk_hnsw_memory_bytes(const lk_hnsw *h) {
    const auto *g = h->graph;
    size_t bytes = g->max_elements_ * g->size_data_per_element_ + g->max_elements_ * sizeof(void *);
    for (size_t i = 0; i < g->cur_element_count; i++)
        if (g->element_levels_[i] > 0) bytes += g->size_links_per_element_ * g->element_levels_[i];
    // label_lookup_ (unordered_map): about 40 bytes per entry.
    return bytes + g->cur_element_count * 40;
}

size_t lk_hnsw_serialized_size(const lk_hnsw *h) {
    const auto *g = h->graph;
    size_t bytes = sizeof(g->offsetLevel0_) + sizeof(g->max_elements_) + sizeof(g->cur_element_count) +
        sizeof(g->size_data_per_element_) + sizeof(g->label_offset_) + sizeof(g->offsetData_) + sizeof(g->maxlevel_) +
        sizeof(g->enterpoint_node_) + sizeof(g->maxM_) + sizeof(g->maxM0_) + sizeof(g->M_) + sizeof(g->mult_) +
        sizeof(g->ef_construction_);
    bytes += g->cur_element_count * g->size_data_per_element_;
    for (size_t i = 0; i < g->cur_element_count; i++)
        bytes += sizeof(unsigned int) + (g->element_levels_[i] > 0 ? g->size_links_per_element_ * g->element_levels_[i] : 0);
    return bytes;
}

int lk_hnsw_serialize(const lk_hnsw *h, void *buffer, size_t length, char *error, size_t errorLength) {
    try {
        const auto *g = h->graph;
        Writer w{static_cast<char *>(buffer), length};
        // hnswlib's saveIndex field order; max_elements is written as the element count so a
        // loaded graph is exactly as large as it needs to be.
        size_t count = g->cur_element_count;
        w.pod(g->offsetLevel0_); w.pod(count); w.pod(count);
        w.pod(g->size_data_per_element_); w.pod(g->label_offset_); w.pod(g->offsetData_);
        w.pod(g->maxlevel_); w.pod(g->enterpoint_node_); w.pod(g->maxM_); w.pod(g->maxM0_); w.pod(g->M_);
        w.pod(g->mult_); w.pod(g->ef_construction_);
        w.bytes(g->data_level0_memory_, count * g->size_data_per_element_);
        for (size_t i = 0; i < count; i++) {
            unsigned int size = g->element_levels_[i] > 0 ? (unsigned int)(g->size_links_per_element_ * g->element_levels_[i]) : 0;
            w.pod(size);
            if (size) w.bytes(g->linkLists_[i], size);
        }
        if (w.left != 0) throw std::runtime_error("hnsw serialised size mismatch");
        return 0;
    } catch (const std::exception &e) {
        fail(error, errorLength, e.what());
        return -1;
    }
}

lk_hnsw *lk_hnsw_deserialize(const void *buffer, size_t length, size_t dim, char *error, size_t errorLength) {
    lk_hnsw *h = nullptr;
    try {
        h = new lk_hnsw(dim);
        Reader r{static_cast<const char *>(buffer), length};
        auto *g = new hnswlib::HierarchicalNSW<float>(&h->space);
        h->graph = g;
        // The default constructor leaves pointers unset; clear them so a failure below frees nothing wild.
        g->data_level0_memory_ = nullptr; g->linkLists_ = nullptr; g->visited_list_pool_ = nullptr;
        g->cur_element_count = 0;
        size_t count = 0, maxElements = 0;
        r.pod(g->offsetLevel0_); r.pod(maxElements); r.pod(count);
        r.pod(g->size_data_per_element_); r.pod(g->label_offset_); r.pod(g->offsetData_);
        r.pod(g->maxlevel_); r.pod(g->enterpoint_node_); r.pod(g->maxM_); r.pod(g->maxM0_); r.pod(g->M_);
        r.pod(g->mult_); r.pod(g->ef_construction_);
        g->data_size_ = h->space.get_data_size();
        g->fstdistfunc_ = h->space.get_dist_func();
        g->dist_func_param_ = h->space.get_dist_func_param();
        g->size_links_per_element_ = g->maxM_ * sizeof(hnswlib::tableint) + sizeof(hnswlib::linklistsizeint);
        g->size_links_level0_ = g->maxM0_ * sizeof(hnswlib::tableint) + sizeof(hnswlib::linklistsizeint);
        if (g->size_data_per_element_ != g->size_links_level0_ + g->data_size_ + sizeof(hnswlib::labeltype) ||
            g->offsetData_ != g->size_links_level0_ || g->label_offset_ != g->size_links_level0_ + g->data_size_ ||
            g->M_ == 0 || g->M_ > 10000 || count > length / g->size_data_per_element_ ||
            (count > 0 && (g->enterpoint_node_ >= count || g->maxlevel_ < 0)))
            throw std::runtime_error("hnsw payload has inconsistent sizes (other dimension or corrupt)");
        size_t capacity = std::max<size_t>(count, 16);
        g->max_elements_ = capacity;
        g->data_level0_memory_ = (char *)malloc(capacity * g->size_data_per_element_);
        if (!g->data_level0_memory_) throw std::runtime_error("out of memory loading hnsw graph");
        r.bytes(g->data_level0_memory_, count * g->size_data_per_element_);
        std::vector<std::mutex>(capacity).swap(g->link_list_locks_);
        std::vector<std::mutex>(hnswlib::HierarchicalNSW<float>::max_update_element_locks).swap(g->link_list_update_locks_);
        g->visited_list_pool_ = new hnswlib::VisitedListPool(1, capacity);
        g->linkLists_ = (char **)calloc(capacity, sizeof(void *));
        if (!g->linkLists_) throw std::runtime_error("out of memory loading hnsw graph");
        g->element_levels_ = std::vector<int>(capacity);
        g->revSize_ = 1.0 / g->mult_;
        g->ef_ = 10;
        g->num_deleted_ = 0;
        for (size_t i = 0; i < count; i++) {
            unsigned int size = 0;
            r.pod(size);
            if (size % g->size_links_per_element_ != 0) throw std::runtime_error("hnsw payload has a bad link list");
            g->element_levels_[i] = (int)(size / g->size_links_per_element_);
            if (size) {
                g->linkLists_[i] = (char *)malloc(size);
                if (!g->linkLists_[i]) throw std::runtime_error("out of memory loading hnsw graph");
                r.bytes(g->linkLists_[i], size);
            }
            g->cur_element_count = i + 1;
            g->label_lookup_[g->getExternalLabel((hnswlib::tableint)i)] = (hnswlib::tableint)i;
            if (g->isMarkedDeleted((hnswlib::tableint)i)) g->num_deleted_ += 1;
        }
        if (r.left != 0) throw std::runtime_error("hnsw payload has trailing bytes");
        return h;
    } catch (const std::exception &e) {
        fail(error, errorLength, e.what());
        delete h;
        return nullptr;
    }
}

} // extern "C"
