package storage

import (
	_ "github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	_ "github.com/ipfs/boxo/ipld/unixfs/io"
	_ "github.com/ipfs/go-cid"
	_ "github.com/ipld/go-car/v2"
	_ "github.com/ipld/go-codec-dagpb"
	_ "github.com/multiformats/go-multihash"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/spaolacci/murmur3"
	_ "github.com/spf13/cobra"
	_ "github.com/syndtr/goleveldb/leveldb"
	_ "golang.org/x/sync/errgroup"
	_ "golang.org/x/term"
)
