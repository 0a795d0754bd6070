// SPDX-License-Identifier: MIT
/*
 * Application memory for the simulation: a window of pages that other
 * threads munmap, mmap again with new contents, madvise(MADV_DONTNEED) and
 * mremap while the devices mirror it, with the domain's range_start / _end
 * around every real system call (the job the process event sources will do).
 *
 * Every page of the window has a shadow: its state (mapped, being changed,
 * unmapped), its generation (unique in the process; a new one whenever the
 * memory behind the page is replaced, and written into the page's first 8
 * bytes) and its epoch (bumped once an invalidation covering it has
 * completed, that is once range_start has returned). The lookup hands the
 * devices pfn = generation << 24 | epoch, and mmn_sim_umem_access() checks an
 * engine access against the shadow:
 *
 *   state not mapped            -> the engine reached a page after the
 *                                  invalidation that covered it completed;
 *   epoch differs from the pfn  -> an invalidation completed after the mirror
 *                                  entry was made, and the entry survived it;
 *   generation differs          -> the entry maps a page that was replaced;
 *   stamp in memory differs     -> the same, seen in the memory itself;
 *   SIGSEGV                     -> the page is really gone.
 *
 * None of these can happen with a correct driver: a completed range_start
 * means every device zapped, flushed and waited for the engines (see
 * device.c), and the fault path's read_retry rejects entries looked up
 * before an invalidation. The test suite proves the checks fire with the
 * drivers' injected bugs.
 *
 * Holes the window leaves may be taken by other mappings of the process, so
 * holes are only ever filled with MAP_FIXED_NOREPLACE, and only pages the
 * shadow says are ours are unmapped or replaced.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "sim_internal.h"

enum {
	PAGE_UNMAPPED = 0,
	PAGE_MAPPED,
	PAGE_CHANGING,		/* its invalidation completed; the call is under way */
};

#define PFN_EPOCH_BITS 24
#define PFN_EPOCH_MASK ((1ull << PFN_EPOCH_BITS) - 1)

/* Shadow of one page; atomics. */
struct umem_page {
	uint64_t gen;
	uint32_t epoch;
	uint32_t state;
};

/* What the window writes into each page. */
struct page_stamp {
	uint64_t gen;
	uint64_t writes;
};

struct mmn_sim_umem {
	struct mmn_mm *mm;
	unsigned long base;
	unsigned long npages;
	/*
	 * The process's mmap_lock: taken for writing around calls that change
	 * mappings, for reading by lookups and by mmn_sim_umem_protect().
	 */
	pthread_rwlock_t mmap_lock;
	struct umem_page *pages;
	struct mmn_sim_umem_stats st;	/* atomics */
	bool unordered_dma;		/* atomic: see mmn_sim_umem_set_unordered_dma() */
};

static uint64_t umem_next_gen = 1;	/* atomic; process-wide */

static uint64_t new_gen(void)
{
	return __atomic_fetch_add(&umem_next_gen, 1, __ATOMIC_RELAXED);
}

/* ---- devices out of order (injected bugs) ----------------------------- */

/*
 * Under ThreadSanitizer an mmap() over the window "writes" the whole new
 * mapping (an imitated write), so that any access to the old page not
 * ordered before the mmap is reported. With a correct driver every device
 * access is ordered before it (range_start waited for the engines), and TSan
 * checks that ordering like any other. A driver with a bug planted on purpose
 * (MMN_SIM_BUG_*) lets an engine reach the old page afterwards, or while the
 * mmap runs: that is the violation mmn_sim_umem_access() must report, and
 * TSan would report it too, as a data race of the test. Devices reach memory
 * by DMA, which no CPU memory model orders; in such a window
 * (mmn_sim_umem_set_unordered_dma()) the mmap()s that replace pages are made
 * with TSan ignoring this thread's accesses, and TSan then resets the
 * history of the new mapping instead of imitating a write: a fresh page has
 * no history. Engine accesses stay visible (they are atomics, like the stamp
 * writes), so every other race is still reported.
 */
#if defined(__SANITIZE_THREAD__)
void AnnotateIgnoreWritesBegin(const char *file, int line);
void AnnotateIgnoreWritesEnd(const char *file, int line);

static bool map_unordered_begin(struct mmn_sim_umem *um)
{
	if (!__atomic_load_n(&um->unordered_dma, __ATOMIC_RELAXED))
		return false;
	AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
	return true;
}

static void map_unordered_end(bool on)
{
	if (on)
		AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
}
#else
static bool map_unordered_begin(struct mmn_sim_umem *um)
{
	(void)um;
	return false;
}

static void map_unordered_end(bool on)
{
	(void)on;
}
#endif

/* mmap() for the window's own pages: see above. */
static void *umem_map(struct mmn_sim_umem *um, void *want, size_t len, int flags)
{
	bool unordered = map_unordered_begin(um);
	void *p = mmap(want, len, PROT_READ | PROT_WRITE, flags, -1, 0);
	int err = errno;

	map_unordered_end(unordered);
	errno = err;
	return p;
}

void mmn_sim_umem_set_unordered_dma(struct mmn_sim_umem *um, bool on)
{
	__atomic_store_n(&um->unordered_dma, on, __ATOMIC_RELAXED);
}

/* ---- SIGSEGV into a verdict ---------------------------------------------- */

static __thread sigjmp_buf *segv_guard;
static struct sigaction segv_old;
static pthread_once_t segv_once = PTHREAD_ONCE_INIT;

static void segv_handler(int sig, siginfo_t *si, void *uc)
{
	sigjmp_buf *guard = segv_guard;

	(void)si;
	(void)uc;
	if (guard) {
		segv_guard = NULL;
		siglongjmp(*guard, 1);
	}
	/* Not ours: put the previous handling back; the fault happens again. */
	sigaction(sig, &segv_old, NULL);
}

static void segv_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = segv_handler;
	/* NODEFER: we leave with siglongjmp, not through sigreturn. */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &segv_old);
}

/* ---- the window ---------------------------------------------------------- */

static void stamp_page(struct mmn_sim_umem *um, unsigned long i)
{
	struct page_stamp *ps = (struct page_stamp *)(um->base + (i << SIM_PAGE_SHIFT));
	uint64_t gen = new_gen();

	__atomic_store_n(&ps->gen, gen, __ATOMIC_RELAXED);
	__atomic_store_n(&ps->writes, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&um->pages[i].gen, gen, __ATOMIC_RELAXED);
	sim_store(&um->pages[i].state, PAGE_MAPPED);
}

int mmn_sim_umem_new(struct mmn_mm *mm, unsigned long npages, struct mmn_sim_umem **ump)
{
	pthread_rwlockattr_t attr;
	struct mmn_sim_umem *um;
	void *p;

	if (!mm || !npages || !ump)
		return -EINVAL;
	pthread_once(&segv_once, segv_install);
	um = calloc(1, sizeof(*um));
	if (!um)
		return -ENOMEM;
	um->pages = calloc(npages, sizeof(*um->pages));
	p = mmap(NULL, npages << SIM_PAGE_SHIFT, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!um->pages || p == MAP_FAILED) {
		if (p != MAP_FAILED)
			munmap(p, npages << SIM_PAGE_SHIFT);
		free(um->pages);
		free(um);
		return -ENOMEM;
	}
	um->mm = mm;
	um->base = (unsigned long)p;
	um->npages = npages;
	/*
	 * Writers first, as the kernel's mmap_lock: overlapping readers
	 * (mmn_sim_umem_protect) must not starve munmap. Nobody takes it
	 * for reading twice on one thread, which this kind would deadlock.
	 */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&um->mmap_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	for (unsigned long i = 0; i < npages; i++)
		stamp_page(um, i);
	*ump = um;
	return 0;
}

unsigned long mmn_sim_umem_base(const struct mmn_sim_umem *um)
{
	return um->base;
}

unsigned long mmn_sim_umem_size(const struct mmn_sim_umem *um)
{
	return um->npages << SIM_PAGE_SHIFT;
}

static int umem_range(struct mmn_sim_umem *um, unsigned long addr, unsigned long len,
		      unsigned long *first, unsigned long *last)
{
	if (!um || !len || (addr | len) & ~SIM_PAGE_MASK || addr < um->base ||
	    addr + len < addr || addr + len > um->base + (um->npages << SIM_PAGE_SHIFT))
		return -EINVAL;
	*first = (addr - um->base) >> SIM_PAGE_SHIFT;
	*last = *first + (len >> SIM_PAGE_SHIFT);
	return 0;
}

static unsigned long page_addr(struct mmn_sim_umem *um, unsigned long i)
{
	return um->base + (i << SIM_PAGE_SHIFT);
}

static uint32_t page_state(struct mmn_sim_umem *um, unsigned long i)
{
	return sim_load(&um->pages[i].state);
}

static bool any_mapped(struct mmn_sim_umem *um, unsigned long first, unsigned long last)
{
	for (unsigned long i = first; i < last; i++)
		if (page_state(um, i) == PAGE_MAPPED)
			return true;
	return false;
}

/*
 * Open a region; true if it is open and must be ended. A start that fails
 * opened nothing, and an _end for it would be unmatched: callers end only
 * what this says is open.
 */
static bool range_open(struct mmn_sim_umem *um, struct mmn_range *range,
		       enum mmn_event event, unsigned long first, unsigned long last)
{
	mmn_range_init(range, event, 0, um->mm, page_addr(um, first), page_addr(um, last));
	sim_inc(&um->st.invalidations);
	return mmn_invalidate_range_start(range) == 0;
}

/*
 * The invalidation has completed for the mapped pages of [first, last): bump
 * their epochs (release: pairs with the acquire loads in the lookup and in
 * the access check) and, if @changing, mark them as being changed.
 */
static void inval_done(struct mmn_sim_umem *um, unsigned long first, unsigned long last,
		       bool changing)
{
	for (unsigned long i = first; i < last; i++) {
		if (page_state(um, i) != PAGE_MAPPED)
			continue;
		__atomic_fetch_add(&um->pages[i].epoch, 1, __ATOMIC_RELEASE);
		if (changing)
			sim_store(&um->pages[i].state, PAGE_CHANGING);
	}
}

/* Call @fn on each maximal run of pages in state @state. */
static int for_runs(struct mmn_sim_umem *um, unsigned long first, unsigned long last,
		    uint32_t state,
		    int (*fn)(struct mmn_sim_umem *um, unsigned long i, unsigned long n))
{
	unsigned long i = first;

	while (i < last) {
		unsigned long j;
		int ret;

		if (page_state(um, i) != state) {
			i++;
			continue;
		}
		for (j = i + 1; j < last && page_state(um, j) == state; j++)
			;
		ret = fn(um, i, j - i);
		if (ret)
			return ret;
		i = j;
	}
	return 0;
}

static int run_munmap(struct mmn_sim_umem *um, unsigned long i, unsigned long n)
{
	if (munmap((void *)page_addr(um, i), n << SIM_PAGE_SHIFT))
		return -errno;
	for (unsigned long k = i; k < i + n; k++)
		sim_store(&um->pages[k].state, PAGE_UNMAPPED);
	return 0;
}

/*
 * Change the mapped pages of [addr, addr+len) the way the kernel would:
 * invalidate first (UNMAP: munmap, CLEAR: dontneed), then @fn on each run of
 * pages, then end the region.
 */
static int umem_change(struct mmn_sim_umem *um, unsigned long addr, unsigned long len,
		       enum mmn_event event,
		       int (*fn)(struct mmn_sim_umem *um, unsigned long i, unsigned long n))
{
	unsigned long first, last;
	struct mmn_range range;
	bool open;
	int ret;

	ret = umem_range(um, addr, len, &first, &last);
	if (ret)
		return ret;
	pthread_rwlock_wrlock(&um->mmap_lock);
	if (!any_mapped(um, first, last))
		goto out;
	open = range_open(um, &range, event, first, last);
	inval_done(um, first, last, true);
	ret = for_runs(um, first, last, PAGE_CHANGING, fn);
	if (open)
		mmn_invalidate_range_end(&range);
	sim_inc(event == MMN_EVENT_UNMAP ? &um->st.munmaps : &um->st.dontneeds);
out:
	pthread_rwlock_unlock(&um->mmap_lock);
	return ret;
}

int mmn_sim_umem_munmap(struct mmn_sim_umem *um, unsigned long addr, unsigned long len)
{
	return umem_change(um, addr, len, MMN_EVENT_UNMAP, run_munmap);
}

/* Replace our pages (their invalidation is done) with fresh ones. */
static int run_replace(struct mmn_sim_umem *um, unsigned long i, unsigned long n)
{
	void *want = (void *)page_addr(um, i);

	if (umem_map(um, want, n << SIM_PAGE_SHIFT,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED) != want)
		return -errno;
	for (unsigned long k = i; k < i + n; k++)
		stamp_page(um, k);
	return 0;
}

/* Fill one hole page, if nobody else has mapped something there. */
static void fill_hole(struct mmn_sim_umem *um, unsigned long i)
{
	void *want = (void *)page_addr(um, i);
	void *p = umem_map(um, want, SIM_PAGE_SIZE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE);

	if (p == want) {
		stamp_page(um, i);
		return;
	}
	/* A kernel without NOREPLACE may place it elsewhere: undo that. */
	if (p != MAP_FAILED)
		munmap(p, SIM_PAGE_SIZE);
	sim_inc(&um->st.holes_lost);
}

static int run_fill(struct mmn_sim_umem *um, unsigned long i, unsigned long n)
{
	void *want = (void *)page_addr(um, i);
	void *p = umem_map(um, want, n << SIM_PAGE_SHIFT,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE);

	if (p == want) {
		for (unsigned long k = i; k < i + n; k++)
			stamp_page(um, k);
		return 0;
	}
	if (p != MAP_FAILED)
		munmap(p, n << SIM_PAGE_SHIFT);
	/* Part of the hole is taken: fill what is still free, page by page. */
	for (unsigned long k = i; k < i + n; k++)
		fill_hole(um, k);
	return 0;
}

int mmn_sim_umem_mmap(struct mmn_sim_umem *um, unsigned long addr, unsigned long len)
{
	unsigned long first, last;
	struct mmn_range range;
	bool replacing, open = false;
	int ret;

	ret = umem_range(um, addr, len, &first, &last);
	if (ret)
		return ret;
	pthread_rwlock_wrlock(&um->mmap_lock);
	/* mmap(MAP_FIXED) over a mapping unmaps it first: invalidate that. */
	replacing = any_mapped(um, first, last);
	if (replacing) {
		open = range_open(um, &range, MMN_EVENT_UNMAP, first, last);
		inval_done(um, first, last, true);
		ret = for_runs(um, first, last, PAGE_CHANGING, run_replace);
	}
	if (!ret)
		ret = for_runs(um, first, last, PAGE_UNMAPPED, run_fill);
	if (open)
		mmn_invalidate_range_end(&range);
	sim_inc(&um->st.mmaps);
	pthread_rwlock_unlock(&um->mmap_lock);
	return ret;
}

static int run_dontneed(struct mmn_sim_umem *um, unsigned long i, unsigned long n)
{
	if (madvise((void *)page_addr(um, i), n << SIM_PAGE_SHIFT, MADV_DONTNEED))
		return -errno;
	/* The pages now read as zero: new contents, new generations. */
	for (unsigned long k = i; k < i + n; k++)
		stamp_page(um, k);
	return 0;
}

int mmn_sim_umem_dontneed(struct mmn_sim_umem *um, unsigned long addr, unsigned long len)
{
	return umem_change(um, addr, len, MMN_EVENT_CLEAR, run_dontneed);
}

int mmn_sim_umem_mremap(struct mmn_sim_umem *um, unsigned long from, unsigned long len,
			unsigned long to)
{
	unsigned long sfirst, slast, dfirst, dlast, n;
	struct mmn_range srange, drange;
	bool moving = false, sopen, dopen;
	int ret;

	ret = umem_range(um, from, len, &sfirst, &slast);
	if (!ret)
		ret = umem_range(um, to, len, &dfirst, &dlast);
	if (ret)
		return ret;
	if (from < to + len && to < from + len)
		return -EINVAL;
	n = slast - sfirst;
	pthread_rwlock_wrlock(&um->mmap_lock);
	for (unsigned long k = 0; k < n && !moving; k++)
		moving = page_state(um, sfirst + k) == PAGE_MAPPED &&
			 page_state(um, dfirst + k) == PAGE_MAPPED;
	if (!moving)
		goto out;
	/* The destination's pages go away, and the source's move. */
	dopen = range_open(um, &drange, MMN_EVENT_UNMAP, dfirst, dlast);
	sopen = range_open(um, &srange, MMN_EVENT_UNMAP, sfirst, slast);
	for (unsigned long k = 0; k < n; k++) {
		unsigned long s = sfirst + k, d = dfirst + k;

		if (page_state(um, s) != PAGE_MAPPED || page_state(um, d) != PAGE_MAPPED)
			continue;
		inval_done(um, s, s + 1, true);
		inval_done(um, d, d + 1, true);
	}
	for (unsigned long k = 0; k < n && !ret; k++) {
		unsigned long s = sfirst + k, d = dfirst + k;
		void *to = (void *)page_addr(um, d);

		if (page_state(um, s) != PAGE_CHANGING)
			continue;
		/* Page by page: a page always lies in a single mapping. */
		if (mremap((void *)page_addr(um, s), SIM_PAGE_SIZE, SIM_PAGE_SIZE,
			   MREMAP_MAYMOVE | MREMAP_FIXED, to) != to) {
			ret = -errno;
			break;
		}
		__atomic_store_n(&um->pages[d].gen,
				 __atomic_load_n(&um->pages[s].gen, __ATOMIC_RELAXED),
				 __ATOMIC_RELAXED);
		sim_store(&um->pages[d].state, PAGE_MAPPED);
		sim_store(&um->pages[s].state, PAGE_UNMAPPED);
	}
	/* On failure, whatever was not moved is still mapped where it was. */
	for (unsigned long k = 0; k < n; k++) {
		unsigned long s = sfirst + k, d = dfirst + k;

		if (page_state(um, s) == PAGE_CHANGING)
			sim_store(&um->pages[s].state, PAGE_MAPPED);
		if (page_state(um, d) == PAGE_CHANGING)
			sim_store(&um->pages[d].state, PAGE_MAPPED);
	}
	if (sopen)
		mmn_invalidate_range_end(&srange);
	if (dopen)
		mmn_invalidate_range_end(&drange);
	sim_inc(&um->st.mremaps);
out:
	pthread_rwlock_unlock(&um->mmap_lock);
	return ret;
}

int mmn_sim_umem_protect(struct mmn_sim_umem *um, unsigned long addr, unsigned long len)
{
	unsigned long first, last;
	struct mmn_range range;
	bool open;
	int ret;

	ret = umem_range(um, addr, len, &first, &last);
	if (ret)
		return ret;
	pthread_rwlock_rdlock(&um->mmap_lock);
	open = range_open(um, &range, MMN_EVENT_PROTECTION_PAGE, first, last);
	inval_done(um, first, last, false);
	if (open)
		mmn_invalidate_range_end(&range);
	sim_inc(&um->st.protects);
	pthread_rwlock_unlock(&um->mmap_lock);
	return 0;
}

void mmn_sim_umem_destroy(struct mmn_sim_umem *um)
{
	if (!um)
		return;
	mmn_sim_umem_munmap(um, um->base, um->npages << SIM_PAGE_SHIFT);
	pthread_rwlock_destroy(&um->mmap_lock);
	free(um->pages);
	free(um);
}

/* ---- the devices' view --------------------------------------------------- */

int mmn_sim_umem_lookup(void *arg, unsigned long va, bool write, void **host,
			uint64_t *pfn)
{
	struct mmn_sim_umem *um = arg;
	unsigned long i;
	int ret = -EFAULT;

	(void)write;
	if (va < um->base || va >= um->base + (um->npages << SIM_PAGE_SHIFT))
		return -EFAULT;
	i = (va - um->base) >> SIM_PAGE_SHIFT;
	pthread_rwlock_rdlock(&um->mmap_lock);
	if (page_state(um, i) == PAGE_MAPPED) {
		uint64_t gen = __atomic_load_n(&um->pages[i].gen, __ATOMIC_RELAXED);
		uint32_t epoch = __atomic_load_n(&um->pages[i].epoch, __ATOMIC_ACQUIRE);

		*host = (void *)page_addr(um, i);
		*pfn = gen << PFN_EPOCH_BITS | (epoch & PFN_EPOCH_MASK);
		ret = 0;
	}
	pthread_rwlock_unlock(&um->mmap_lock);
	return ret;
}

static enum mmn_sim_verdict umem_check(struct mmn_sim_umem *um, void *host,
				       uint64_t pfn, bool write)
{
	unsigned long va = (unsigned long)host & SIM_PAGE_MASK, i;
	struct page_stamp *ps = (struct page_stamp *)va;
	sigjmp_buf env;
	uint64_t gen;

	if (va < um->base || va >= um->base + (um->npages << SIM_PAGE_SHIFT))
		return MMN_SIM_UNMAPPED;
	i = (va - um->base) >> SIM_PAGE_SHIFT;
	if (page_state(um, i) != PAGE_MAPPED)
		return MMN_SIM_UNMAPPED;
	if ((__atomic_load_n(&um->pages[i].epoch, __ATOMIC_ACQUIRE) & PFN_EPOCH_MASK) !=
	    (pfn & PFN_EPOCH_MASK))
		return MMN_SIM_AFTER_INVAL;
	if (__atomic_load_n(&um->pages[i].gen, __ATOMIC_RELAXED) != pfn >> PFN_EPOCH_BITS)
		return MMN_SIM_STALE_GEN;

	if (sigsetjmp(env, 0)) {
		/*
		 * The handler cleared segv_guard. A sanitizer's own handler
		 * may have run ours with SIGSEGV blocked (it ignores our
		 * SA_NODEFER), and siglongjmp without a saved mask leaves it
		 * blocked: unblock it here, on the rare path only.
		 */
		sigset_t set;

		sigemptyset(&set);
		sigaddset(&set, SIGSEGV);
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
		return MMN_SIM_SEGV;
	}
	segv_guard = &env;
	gen = __atomic_load_n(&ps->gen, __ATOMIC_RELAXED);
	if (write && gen == pfn >> PFN_EPOCH_BITS)
		__atomic_fetch_add(&ps->writes, 1, __ATOMIC_RELAXED);
	segv_guard = NULL;
	if (gen != pfn >> PFN_EPOCH_BITS)
		return MMN_SIM_STALE_READ;
	return MMN_SIM_OK;
}

enum mmn_sim_verdict mmn_sim_umem_access(struct mmn_sim_umem *um, void *host,
					 uint64_t pfn, bool write)
{
	enum mmn_sim_verdict v = umem_check(um, host, pfn, write);

	sim_inc(&um->st.accesses);
	sim_inc(&um->st.verdicts[v]);
	return v;
}

void mmn_sim_umem_get_stats(struct mmn_sim_umem *um, struct mmn_sim_umem_stats *st)
{
	st->invalidations = sim_load_relaxed(&um->st.invalidations);
	st->munmaps = sim_load_relaxed(&um->st.munmaps);
	st->mmaps = sim_load_relaxed(&um->st.mmaps);
	st->dontneeds = sim_load_relaxed(&um->st.dontneeds);
	st->mremaps = sim_load_relaxed(&um->st.mremaps);
	st->protects = sim_load_relaxed(&um->st.protects);
	st->holes_lost = sim_load_relaxed(&um->st.holes_lost);
	st->accesses = sim_load_relaxed(&um->st.accesses);
	for (int v = 0; v < MMN_SIM_VERDICT_NR; v++)
		st->verdicts[v] = sim_load_relaxed(&um->st.verdicts[v]);
}

static const char *const verdict_names[MMN_SIM_VERDICT_NR] = {
	[MMN_SIM_OK] = "ok",
	[MMN_SIM_UNMAPPED] = "unmapped",
	[MMN_SIM_AFTER_INVAL] = "after-inval",
	[MMN_SIM_STALE_GEN] = "stale-gen",
	[MMN_SIM_STALE_READ] = "stale-read",
	[MMN_SIM_SEGV] = "segv",
};

const char *mmn_sim_verdict_name(enum mmn_sim_verdict v)
{
	if ((unsigned int)v >= MMN_SIM_VERDICT_NR)
		return "?";
	return verdict_names[v];
}
