//! The resource tree: who owns which physical addresses and I/O ports, after
//! Linux `kernel/resource.c`.
//!
//! Two roots, `iomem` (physical addresses `0..2^52`) and `ioport` (ports
//! `0..0x10000`), each the top of a tree of named ranges: children lie inside
//! their parent, siblings are sorted by address and never overlap. Drivers (and
//! the shell) claim ranges with `request_region`/`request_mem_region`, which
//! descend into ranges that are not busy (`System RAM` is a container, a claimed
//! region is busy) and fail naming the range in the way; the kernel registers
//! what it uses itself at boot with [`ResourceTree::insert`] (Linux
//! `insert_resource`). [`ResourceTree::rows`] walks a tree in the order and the
//! format of `/proc/iomem` and `/proc/ioports`.
//!
//! The kernel changes the tree inside a lock, so nothing here allocates: the
//! nodes live in a fixed arena of `N` entries (a full arena is
//! [`ResourceError::Full`]) and names are stored inline, at most [`NAME_MAX`]
//! bytes.

use core::fmt;

/// Longest resource name, in bytes.
pub const NAME_MAX: usize = 31;
/// Last physical address of the `iomem` root (52-bit physical addresses).
pub const IOMEM_END: u64 = (1 << 52) - 1;
/// Last port of the `ioport` root.
pub const IOPORT_END: u64 = 0xffff;

/// Which tree: physical memory or I/O ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResKind {
    /// `iomem`: physical addresses (`request_mem_region`).
    Mem,
    /// `ioport`: I/O ports (`request_region`).
    Io,
}

impl ResKind {
    /// The word the shell uses: `mem` or `io`.
    pub const fn word(self) -> &'static str {
        match self {
            ResKind::Mem => "mem",
            ResKind::Io => "io",
        }
    }
    /// Last address of the root.
    pub const fn root_end(self) -> u64 {
        match self {
            ResKind::Mem => IOMEM_END,
            ResKind::Io => IOPORT_END,
        }
    }
    /// Hex digits `/proc` pads addresses to: 4 for ports, 8 for memory (Linux
    /// `r_show`: 4 when the root ends below 0x10000).
    pub const fn width(self) -> usize {
        match self {
            ResKind::Mem => 8,
            ResKind::Io => 4,
        }
    }
    fn root(self) -> u16 {
        match self {
            ResKind::Mem => 0,
            ResKind::Io => 1,
        }
    }
}

/// Resource flags (Linux `IORESOURCE_*` where Linux has one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResFlags(pub u32);

impl ResFlags {
    /// No flag.
    pub const EMPTY: ResFlags = ResFlags(0);
    /// Linux `IORESOURCE_IO`.
    pub const IO: ResFlags = ResFlags(0x100);
    /// Linux `IORESOURCE_MEM`.
    pub const MEM: ResFlags = ResFlags(0x200);
    /// Linux `IORESOURCE_SYSRAM`: RAM (`System RAM`).
    pub const SYSRAM: ResFlags = ResFlags(0x0100_0000);
    /// Linux `IORESOURCE_BUSY`: claimed; requests do not descend into it.
    pub const BUSY: ResFlags = ResFlags(0x8000_0000);
    /// memkern: registered by the kernel for itself; not released from outside.
    pub const KERNEL: ResFlags = ResFlags(1 << 0);
    /// memkern: the kernel depends on its contents (its image, mem_map, page
    /// tables, COM1, the PICs...): raw writes into it are refused unless forced.
    pub const PROTECTED: ResFlags = ResFlags(1 << 1);

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: ResFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for ResFlags {
    type Output = ResFlags;
    fn bitor(self, o: ResFlags) -> ResFlags {
        ResFlags(self.0 | o.0)
    }
}

/// A resource name stored inline (no heap): 1 to [`NAME_MAX`] printable ASCII
/// bytes, spaces allowed inside.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name {
    len: u8,
    bytes: [u8; NAME_MAX],
}

impl Name {
    const EMPTY: Name = Name {
        len: 0,
        bytes: [0; NAME_MAX],
    };

    /// `s` as a name; [`ResourceError::BadName`] if it is empty, too long or not
    /// printable ASCII.
    pub fn new(s: &str) -> Result<Name, ResourceError> {
        let ok = !s.is_empty()
            && s.len() <= NAME_MAX
            && s.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
            && !s.starts_with(' ')
            && !s.ends_with(' ');
        if !ok {
            return Err(ResourceError::BadName);
        }
        let mut n = Name::EMPTY;
        n.bytes[..s.len()].copy_from_slice(s.as_bytes());
        n.len = s.len() as u8;
        Ok(n)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        // Only printable ASCII is ever stored.
        core::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("?")
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// A range in a tree, as errors and queries report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Its name.
    pub name: Name,
    /// First address.
    pub start: u64,
    /// Last address (inclusive, as Linux).
    pub end: u64,
    /// Its flags.
    pub flags: ResFlags,
}

/// Why a resource operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceError {
    /// A length of zero.
    Empty,
    /// The range does not fit in the root (`0..=root_end`).
    OutOfRange { kind: ResKind, start: u64, len: u64 },
    /// The range overlaps `with`, which is busy or is not wholly around it.
    Conflict { kind: ResKind, with: Span },
    /// The arena is full.
    Full,
    /// No busy resource with exactly this range.
    NotFound { kind: ResKind, start: u64, end: u64 },
    /// The kernel registered this resource for itself.
    KernelOwned { kind: ResKind, span: Span },
    /// The resource still has resources inside it.
    HasChildren { kind: ResKind, span: Span },
    /// An empty, too long or unprintable name.
    BadName,
}

impl fmt::Display for ResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = |k: ResKind| k.width();
        // A resource as its `/proc` line shows it, unindented.
        let line = |kind, span| Row {
            kind,
            depth: 0,
            span,
        };
        match *self {
            ResourceError::Empty => f.write_str("length 0: a region has at least one address"),
            ResourceError::OutOfRange { kind, start, len } => write!(
                f,
                "{} range {start:#x}+{len:#x} is beyond the last {} address {:#x}",
                kind.word(),
                kind.word(),
                kind.root_end()
            ),
            ResourceError::Conflict { kind, with } => {
                write!(
                    f,
                    "{} range conflicts with {}",
                    kind.word(),
                    line(kind, with)
                )
            }
            ResourceError::Full => f.write_str("the resource table is full"),
            ResourceError::NotFound { kind, start, end } => write!(
                f,
                "no requested {} region {:0w$x}-{:0w$x}",
                kind.word(),
                start,
                end,
                w = w(kind)
            ),
            ResourceError::KernelOwned { kind, span } => {
                let span = line(kind, span);
                write!(f, "{span} is the kernel's own and stays registered")
            }
            ResourceError::HasChildren { kind, span } => {
                write!(f, "{} still has regions inside it", line(kind, span))
            }
            ResourceError::BadName => {
                write!(f, "a region name is 1 to {NAME_MAX} printable characters")
            }
        }
    }
}

/// A handle on a node of the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResId(u16);

const NIL: u16 = u16::MAX;

#[derive(Clone, Copy, Debug)]
struct Node {
    start: u64,
    end: u64,
    flags: ResFlags,
    name: Name,
    parent: u16,
    child: u16,
    sibling: u16,
    live: bool,
}

impl Node {
    const EMPTY: Node = Node {
        start: 0,
        end: 0,
        flags: ResFlags::EMPTY,
        name: Name::EMPTY,
        parent: NIL,
        child: NIL,
        sibling: NIL,
        live: false,
    };
    /// A root: `[0, end]`, unnamed, live.
    const fn root(end: u64, flags: ResFlags) -> Node {
        Node {
            end,
            flags,
            live: true,
            ..Node::EMPTY
        }
    }
    fn span(&self) -> Span {
        Span {
            name: self.name,
            start: self.start,
            end: self.end,
            flags: self.flags,
        }
    }
}

/// One line of `/proc/iomem` or `/proc/ioports`: a resource and its depth
/// below the root (0 for the root's children).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    /// The tree it is in.
    pub kind: ResKind,
    /// Levels below the root's children.
    pub depth: usize,
    /// The resource.
    pub span: Span,
}

impl fmt::Display for Row {
    /// Linux `r_show`: `"%*s%0*llx-%0*llx : %s"` with two spaces per level and
    /// addresses padded to 4 (ports) or 8 (memory) hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.kind.width();
        write!(
            f,
            "{:ind$}{:0w$x}-{:0w$x} : {}",
            "",
            self.span.start,
            self.span.end,
            self.span.name,
            ind = self.depth * 2,
        )
    }
}

/// The two resource trees in an arena of `N` nodes (two of them are the roots).
#[derive(Clone, Debug)]
pub struct ResourceTree<const N: usize> {
    nodes: [Node; N],
    /// Head of the free list (through `sibling`).
    free: u16,
    used: usize,
}

impl<const N: usize> Default for ResourceTree<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ResourceTree<N> {
    /// The two empty roots, `PCI mem` (`0..=2^52-1`) and `PCI IO` (`0..=0xffff`),
    /// as Linux names them.
    pub const fn new() -> Self {
        assert!(N >= 2 && N < NIL as usize);
        let mut nodes = [Node::EMPTY; N];
        let mut i = 2;
        while i < N {
            nodes[i].sibling = if i + 1 < N { (i + 1) as u16 } else { NIL };
            i += 1;
        }
        nodes[0] = Node::root(IOMEM_END, ResFlags::MEM);
        nodes[1] = Node::root(IOPORT_END, ResFlags::IO);
        ResourceTree {
            nodes,
            free: if N > 2 { 2 } else { NIL },
            used: 2,
        }
    }

    /// Resources in both trees, the roots excluded.
    pub fn len(&self) -> usize {
        self.used - 2
    }

    /// Whether both trees are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Nodes left in the arena.
    pub fn room(&self) -> usize {
        N - self.used
    }

    /// The resource behind `id`, if it is live.
    pub fn get(&self, id: ResId) -> Option<Span> {
        let n = self.nodes.get(id.0 as usize)?;
        (n.live && id.0 > 1).then(|| n.span())
    }

    fn range(kind: ResKind, start: u64, len: u64) -> Result<(u64, u64), ResourceError> {
        if len == 0 {
            return Err(ResourceError::Empty);
        }
        match start.checked_add(len - 1) {
            Some(end) if end <= kind.root_end() => Ok((start, end)),
            _ => Err(ResourceError::OutOfRange { kind, start, len }),
        }
    }

    fn children(&self, parent: u16) -> Children<'_, N> {
        Children {
            t: self,
            next: self.nodes[parent as usize].child,
        }
    }

    fn alloc_node(&mut self, node: Node) -> Result<u16, ResourceError> {
        if self.free == NIL {
            return Err(ResourceError::Full);
        }
        let i = self.free;
        self.free = self.nodes[i as usize].sibling;
        self.nodes[i as usize] = Node { live: true, ..node };
        self.used += 1;
        Ok(i)
    }

    /// Links node `i` into `parent`'s children after `prev` (`NIL`: first).
    fn link(&mut self, parent: u16, prev: u16, i: u16) {
        self.nodes[i as usize].parent = parent;
        if prev == NIL {
            self.nodes[i as usize].sibling = self.nodes[parent as usize].child;
            self.nodes[parent as usize].child = i;
        } else {
            self.nodes[i as usize].sibling = self.nodes[prev as usize].sibling;
            self.nodes[prev as usize].sibling = i;
        }
    }

    /// Where `[start, end]` goes: descends from `kind`'s root into the child
    /// that holds the whole range (`how` says whether a busy one may be
    /// entered), and returns that parent and the child the new node follows
    /// (`NIL`: first). Any other overlapping child is the conflict, except,
    /// for [`Placement::Insert`], children wholly inside the range (the new
    /// node adopts them).
    fn place(
        &self,
        kind: ResKind,
        start: u64,
        end: u64,
        how: Placement,
    ) -> Result<(u16, u16), ResourceError> {
        let mut parent = kind.root();
        'descend: loop {
            let mut prev = NIL;
            for c in self.children(parent) {
                let n = &self.nodes[c as usize];
                if n.end < start {
                    prev = c;
                    continue;
                }
                if n.start > end {
                    break;
                }
                let holds = n.start <= start && n.end >= end;
                let enter = match how {
                    Placement::Request => !n.flags.contains(ResFlags::BUSY),
                    Placement::Insert => true,
                };
                if holds && enter {
                    parent = c;
                    continue 'descend;
                }
                let inside = start <= n.start && n.end <= end;
                if !(inside && how == Placement::Insert) {
                    return Err(ResourceError::Conflict {
                        kind,
                        with: n.span(),
                    });
                }
            }
            return Ok((parent, prev));
        }
    }

    /// What `request` and `insert` share: checks the name and the range, finds
    /// the new resource's place (`how`), and links a new node there.
    fn add(
        &mut self,
        kind: ResKind,
        start: u64,
        len: u64,
        name: &str,
        flags: ResFlags,
        how: Placement,
    ) -> Result<u16, ResourceError> {
        let name = Name::new(name)?;
        let (start, end) = Self::range(kind, start, len)?;
        let (parent, prev) = self.place(kind, start, end, how)?;
        let i = self.alloc_node(Node {
            start,
            end,
            flags: flags | kind_flag(kind),
            name,
            ..Node::EMPTY
        })?;
        self.link(parent, prev, i);
        Ok(i)
    }

    /// Linux `__request_region`: claims `[start, start + len)` as a busy
    /// resource called `name`, inside the deepest resource that is not busy and
    /// holds the whole range. Fails with the resource in the way.
    pub fn request(
        &mut self,
        kind: ResKind,
        start: u64,
        len: u64,
        name: &str,
        flags: ResFlags,
    ) -> Result<ResId, ResourceError> {
        let flags = flags | ResFlags::BUSY;
        self.add(kind, start, len, name, flags, Placement::Request)
            .map(ResId)
    }

    /// Linux `insert_resource`: registers `[start, start + len)` in the deepest
    /// resource that holds all of it, busy or not, and adopts as children the
    /// resources at that level that lie inside it. Fails if it straddles the
    /// edge of one. For the kernel's own entries at boot.
    pub fn insert(
        &mut self,
        kind: ResKind,
        start: u64,
        len: u64,
        name: &str,
        flags: ResFlags,
    ) -> Result<ResId, ResourceError> {
        let i = self.add(kind, start, len, name, flags, Placement::Insert)?;
        let end = self.nodes[i as usize].end;
        // Adopt the run of siblings inside [start, end] that now follows `i`.
        let first = self.nodes[i as usize].sibling;
        let mut last = NIL;
        let mut c = first;
        while c != NIL && self.nodes[c as usize].start <= end {
            self.nodes[c as usize].parent = i;
            last = c;
            c = self.nodes[c as usize].sibling;
        }
        if last != NIL {
            self.nodes[i as usize].child = first;
            self.nodes[last as usize].sibling = NIL;
        }
        self.nodes[i as usize].sibling = c;
        Ok(ResId(i))
    }

    /// Linux `__release_region`: releases the busy resource with exactly this
    /// range, found by descending through the resources that are not busy.
    /// Resources the kernel registered, and resources with children, stay.
    pub fn release(&mut self, kind: ResKind, start: u64, len: u64) -> Result<(), ResourceError> {
        let (start, end) = Self::range(kind, start, len)?;
        let not_found = ResourceError::NotFound { kind, start, end };
        let mut parent = kind.root();
        'descend: loop {
            let mut prev = NIL;
            for c in self.children(parent) {
                let n = self.nodes[c as usize];
                if n.start > end {
                    break;
                }
                if n.start <= start && n.end >= end {
                    if !n.flags.contains(ResFlags::BUSY) {
                        parent = c;
                        continue 'descend;
                    }
                    if n.start != start || n.end != end {
                        return Err(not_found);
                    }
                    if n.flags.contains(ResFlags::KERNEL) {
                        return Err(ResourceError::KernelOwned {
                            kind,
                            span: n.span(),
                        });
                    }
                    if n.child != NIL {
                        return Err(ResourceError::HasChildren {
                            kind,
                            span: n.span(),
                        });
                    }
                    self.unlink(parent, prev, c);
                    return Ok(());
                }
                prev = c;
            }
            return Err(not_found);
        }
    }

    fn unlink(&mut self, parent: u16, prev: u16, c: u16) {
        let next = self.nodes[c as usize].sibling;
        if prev == NIL {
            self.nodes[parent as usize].child = next;
        } else {
            self.nodes[prev as usize].sibling = next;
        }
        self.nodes[c as usize] = Node {
            sibling: self.free,
            ..Node::EMPTY
        };
        self.free = c;
        self.used -= 1;
    }

    /// The first resource (in `/proc` order) that overlaps `[start, end]` and has
    /// every flag of `flags`, or the deepest such resource inside it.
    pub fn find_overlap(
        &self,
        kind: ResKind,
        start: u64,
        end: u64,
        flags: ResFlags,
    ) -> Option<Span> {
        let mut best: Option<Span> = None;
        for r in self.rows(kind) {
            let s = r.span;
            if s.end < start || s.start > end || !s.flags.contains(flags) {
                continue;
            }
            match best {
                None => best = Some(s),
                Some(b) if b.start <= s.start && s.end <= b.end => best = Some(s),
                Some(_) => break,
            }
        }
        best
    }

    /// The deepest resource holding `addr`.
    pub fn lookup(&self, kind: ResKind, addr: u64) -> Option<Span> {
        let mut parent = kind.root();
        let mut found = None;
        'descend: loop {
            for c in self.children(parent) {
                let n = &self.nodes[c as usize];
                if n.start <= addr && addr <= n.end {
                    found = Some(n.span());
                    parent = c;
                    continue 'descend;
                }
            }
            return found;
        }
    }

    /// The lines of `/proc/iomem` (`Mem`) or `/proc/ioports` (`Io`), in order.
    pub fn rows(&self, kind: ResKind) -> Rows<'_, N> {
        let root = kind.root();
        Rows {
            t: self,
            kind,
            root,
            next: self.nodes[root as usize].child,
            depth: 0,
        }
    }

    /// Checks the tree's invariants: every child lies inside its parent and
    /// points back to it, siblings are sorted and disjoint, and the arena's
    /// count matches. `Err` names the first broken one.
    pub fn check(&self) -> Result<(), &'static str> {
        let mut seen = 2;
        for kind in [ResKind::Mem, ResKind::Io] {
            seen += self.check_level(kind.root(), 0)?;
        }
        if seen != self.used {
            return Err("arena count does not match the trees");
        }
        let mut free = 0;
        let mut f = self.free;
        while f != NIL {
            if self.nodes[f as usize].live || free > N {
                return Err("free list holds a live node or loops");
            }
            free += 1;
            f = self.nodes[f as usize].sibling;
        }
        if free + self.used != N {
            return Err("free list length does not match");
        }
        Ok(())
    }

    fn check_level(&self, parent: u16, depth: usize) -> Result<usize, &'static str> {
        if depth > N {
            return Err("cycle");
        }
        let p = &self.nodes[parent as usize];
        let mut count = 0;
        let mut last_end: Option<u64> = None;
        for c in self.children(parent) {
            let n = &self.nodes[c as usize];
            if !n.live || n.parent != parent {
                return Err("child does not point back to its parent");
            }
            if n.start > n.end || n.start < p.start || n.end > p.end {
                return Err("child outside its parent");
            }
            if last_end.is_some_and(|e| n.start <= e) {
                return Err("siblings unsorted or overlapping");
            }
            last_end = Some(n.end);
            count += 1 + self.check_level(c, depth + 1)?;
        }
        Ok(count)
    }
}

/// How [`ResourceTree::place`] treats the resources a new one overlaps.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// `request`: enter only containers that are not busy; any other overlap
    /// is a conflict.
    Request,
    /// `insert`: enter any container; children inside the range are adopted.
    Insert,
}

fn kind_flag(kind: ResKind) -> ResFlags {
    match kind {
        ResKind::Mem => ResFlags::MEM,
        ResKind::Io => ResFlags::IO,
    }
}

struct Children<'a, const N: usize> {
    t: &'a ResourceTree<N>,
    next: u16,
}

impl<const N: usize> Iterator for Children<'_, N> {
    type Item = u16;
    fn next(&mut self) -> Option<u16> {
        (self.next != NIL).then(|| {
            let c = self.next;
            self.next = self.t.nodes[c as usize].sibling;
            c
        })
    }
}

/// Iterator over [`ResourceTree::rows`]: depth-first, in address order.
pub struct Rows<'a, const N: usize> {
    t: &'a ResourceTree<N>,
    kind: ResKind,
    root: u16,
    next: u16,
    depth: usize,
}

impl<const N: usize> Iterator for Rows<'_, N> {
    type Item = Row;
    fn next(&mut self) -> Option<Row> {
        if self.next == NIL {
            return None;
        }
        let i = self.next;
        let n = &self.t.nodes[i as usize];
        let row = Row {
            kind: self.kind,
            depth: self.depth,
            span: n.span(),
        };
        // Pre-order successor: first child, else the next sibling of the
        // nearest ancestor that has one.
        if n.child != NIL {
            self.next = n.child;
            self.depth += 1;
        } else {
            let mut c = i;
            loop {
                let cn = &self.t.nodes[c as usize];
                if cn.sibling != NIL {
                    self.next = cn.sibling;
                    break;
                }
                if cn.parent == self.root || cn.parent == NIL {
                    self.next = NIL;
                    break;
                }
                c = cn.parent;
                self.depth -= 1;
            }
        }
        Some(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;

    fn lines<const N: usize>(t: &ResourceTree<N>, kind: ResKind) -> Vec<String> {
        t.rows(kind).map(|r| r.to_string()).collect()
    }

    #[test]
    fn proc_formats_like_linux() {
        let mut t = ResourceTree::<32>::new();
        let ram = ResFlags::SYSRAM | ResFlags::BUSY;
        t.insert(ResKind::Mem, 0, 0x1000, "Reserved", ResFlags::BUSY)
            .unwrap();
        t.insert(ResKind::Mem, 0x1000, 0x9f000, "System RAM", ram)
            .unwrap();
        t.insert(ResKind::Mem, 0x100000, 0x7ff00000, "System RAM", ram)
            .unwrap();
        t.insert(
            ResKind::Mem,
            0x1000000,
            0x800000,
            "Kernel code",
            ResFlags::BUSY,
        )
        .unwrap();
        t.insert(ResKind::Mem, 0x1_0000_0000, 0x8000_0000, "System RAM", ram)
            .unwrap();
        t.insert(
            ResKind::Mem,
            0xfee00000,
            0x1000,
            "Local APIC",
            ResFlags::BUSY,
        )
        .unwrap();
        assert_eq!(
            lines(&t, ResKind::Mem),
            [
                "00000000-00000fff : Reserved",
                "00001000-0009ffff : System RAM",
                "00100000-7fffffff : System RAM",
                "  01000000-017fffff : Kernel code",
                "fee00000-fee00fff : Local APIC",
                "100000000-17fffffff : System RAM",
            ]
        );
        t.request(ResKind::Io, 0x3f8, 8, "serial", ResFlags::EMPTY)
            .unwrap();
        t.request(ResKind::Io, 0x20, 2, "pic1", ResFlags::EMPTY)
            .unwrap();
        assert_eq!(
            lines(&t, ResKind::Io),
            ["0020-0021 : pic1", "03f8-03ff : serial"]
        );
    }

    #[test]
    fn request_descends_into_containers_and_names_conflicts() {
        let mut t = ResourceTree::<16>::new();
        t.insert(
            ResKind::Mem,
            0x100000,
            0x100000,
            "System RAM",
            ResFlags::SYSRAM,
        )
        .unwrap();
        let a = t
            .request(ResKind::Mem, 0x110000, 0x1000, "a", ResFlags::EMPTY)
            .unwrap();
        assert_eq!(
            lines(&t, ResKind::Mem),
            ["00100000-001fffff : System RAM", "  00110000-00110fff : a"]
        );
        let e = t
            .request(ResKind::Mem, 0x110800, 0x1000, "b", ResFlags::EMPTY)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "mem range conflicts with 00110000-00110fff : a"
        );
        let e = t
            .request(ResKind::Mem, 0x1ff000, 0x2000, "c", ResFlags::EMPTY)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "mem range conflicts with 00100000-001fffff : System RAM"
        );
        assert_eq!(t.get(a).unwrap().name.as_str(), "a");
        assert!(matches!(
            t.release(ResKind::Mem, 0x110000, 0x800),
            Err(ResourceError::NotFound { .. })
        ));
        t.release(ResKind::Mem, 0x110000, 0x1000).unwrap();
        assert_eq!(t.get(a), None);
        t.check().unwrap();
    }

    #[test]
    fn kernel_entries_stay_and_insert_adopts() {
        let mut t = ResourceTree::<16>::new();
        t.insert(
            ResKind::Mem,
            0x2000,
            0x1000,
            "inner",
            ResFlags::BUSY | ResFlags::KERNEL,
        )
        .unwrap();
        t.insert(ResKind::Mem, 0x1000, 0x4000, "outer", ResFlags::EMPTY)
            .unwrap();
        assert_eq!(
            lines(&t, ResKind::Mem),
            ["00001000-00004fff : outer", "  00002000-00002fff : inner"]
        );
        assert!(matches!(
            t.release(ResKind::Mem, 0x2000, 0x1000),
            Err(ResourceError::KernelOwned { .. })
        ));
        assert!(matches!(
            t.insert(ResKind::Mem, 0x4000, 0x2000, "straddle", ResFlags::EMPTY),
            Err(ResourceError::Conflict { .. })
        ));
        t.check().unwrap();
    }

    #[test]
    fn bad_arguments_and_a_full_arena() {
        let mut t = ResourceTree::<4>::new();
        assert_eq!(
            t.request(ResKind::Io, 0, 0, "x", ResFlags::EMPTY),
            Err(ResourceError::Empty)
        );
        assert!(matches!(
            t.request(ResKind::Io, 0xfff0, 0x20, "x", ResFlags::EMPTY),
            Err(ResourceError::OutOfRange { .. })
        ));
        assert!(matches!(
            t.request(ResKind::Mem, u64::MAX, 2, "x", ResFlags::EMPTY),
            Err(ResourceError::OutOfRange { .. })
        ));
        assert_eq!(
            t.request(ResKind::Io, 0, 1, "", ResFlags::EMPTY),
            Err(ResourceError::BadName)
        );
        t.request(ResKind::Io, 0, 1, "a", ResFlags::EMPTY).unwrap();
        t.request(ResKind::Io, 1, 1, "b", ResFlags::EMPTY).unwrap();
        assert_eq!(
            t.request(ResKind::Io, 2, 1, "c", ResFlags::EMPTY),
            Err(ResourceError::Full)
        );
        assert_eq!(t.room(), 0);
        t.check().unwrap();
    }

    #[test]
    fn lookup_and_find_overlap() {
        let mut t = ResourceTree::<16>::new();
        t.insert(ResKind::Mem, 0, 0x10000, "System RAM", ResFlags::SYSRAM)
            .unwrap();
        t.insert(
            ResKind::Mem,
            0x2000,
            0x1000,
            "Kernel code",
            ResFlags::PROTECTED,
        )
        .unwrap();
        assert_eq!(
            t.lookup(ResKind::Mem, 0x2800).unwrap().name.as_str(),
            "Kernel code"
        );
        assert_eq!(
            t.lookup(ResKind::Mem, 0x4000).unwrap().name.as_str(),
            "System RAM"
        );
        assert_eq!(t.lookup(ResKind::Mem, 0x20000), None);
        let p = t.find_overlap(ResKind::Mem, 0x1ff0, 0x2000, ResFlags::PROTECTED);
        assert_eq!(p.unwrap().name.as_str(), "Kernel code");
        assert_eq!(
            t.find_overlap(ResKind::Mem, 0x3000, 0x4000, ResFlags::PROTECTED),
            None
        );
    }
}
