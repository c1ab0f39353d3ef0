// Command goipc is the goipc command-line tool: a Go consumer (pong), a
// producer that measures round trips (ping), the IPC benchmark (bench),
// and the live connections of the host with their counters (stat).
package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

// command is one subcommand; run returns the process exit code.
type command struct {
	summary string
	run     func(args []string) int
	hidden  bool
}

// commands is filled by each subcommand's file in an init function.
var commands = map[string]command{}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "goipc: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	os.Exit(cmd.run(os.Args[2:]))
}

func usage() {
	var b strings.Builder
	b.WriteString("usage: goipc <command> [flags]\n\ncommands:\n")
	names := make([]string, 0, len(commands))
	for name, c := range commands {
		if !c.hidden {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	width := 0
	for _, name := range names {
		width = max(width, len(name))
	}
	for _, name := range names {
		fmt.Fprintf(&b, "  %-*s %s\n", width, name, commands[name].summary)
	}
	b.WriteString("\nRun 'goipc <command> -h' for its flags.\n")
	fmt.Fprint(os.Stderr, b.String())
}
