// Command tributary is the one binary: it creates and joins spaces, reads
// and writes documents, carries changes as bundle files, and (with `run`)
// is the sync bridge beside your databases. `tributary --help` lists the
// commands; every command takes --home and --json.
package main
