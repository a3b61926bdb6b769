/** The lobby panel: who is online (with a Challenge button each), open challenges, and the chat. */
import type { ChatLine, LobbyUpdate } from '../../lobby/messages.js'
import { byId, el } from './dom.js'

export interface LobbyActions {
  chat (text: string): void
  challenge (to: string): void
  answer (from: string, accept: boolean): void
}

export class LobbyView {
  private you = ''
  private readonly players = byId('players')
  private readonly chatLog = byId('chat')
  private readonly challenges = byId('challenges')
  private readonly notice = byId('notice')

  constructor (private readonly actions: LobbyActions) {
    const form = byId<HTMLFormElement>('chat-form')
    const input = byId<HTMLInputElement>('chat-text')
    form.addEventListener('submit', (event) => {
      event.preventDefault()
      const text = input.value.trim()
      if (text === '') return
      actions.chat(text)
      input.value = ''
    })
  }

  /** Every lobby update except `match`, which the app handles. */
  update (update: LobbyUpdate): void {
    switch (update.type) {
      case 'welcome':
        this.you = update.you
        this.showPlayers(update.players)
        this.chatLog.replaceChildren(...update.history.map((line) => this.chatLine(line)))
        break
      case 'players': return this.showPlayers(update.players)
      case 'chat':
        this.chatLog.append(this.chatLine(update))
        this.chatLog.lastElementChild?.scrollIntoView({ block: 'nearest' })
        break
      case 'challenged': return this.showChallenge(update.from)
      case 'challenge-sent': return this.say(`Challenge sent to ${update.to}…`)
      case 'declined': return this.say(`${update.by} declined your challenge.`)
      case 'error': return this.say(update.message)
      case 'match':
        this.challenges.replaceChildren()
        return this.say(`Match against ${update.opponent}!`)
    }
  }

  private showPlayers (players: string[]): void {
    this.players.replaceChildren(...players.map((player) => {
      const item = el('li', { 'data-user': player }, player)
      if (player === this.you) {
        item.append(el('span', { class: 'you' }, ' (you)'))
      } else {
        const button = el('button', { type: 'button', class: 'challenge' }, 'Challenge')
        button.addEventListener('click', () => this.actions.challenge(player))
        item.append(' ', button)
      }
      return item
    }))
    // a challenger who left takes their challenge along
    for (const offer of Array.from(this.challenges.children)) {
      if (!players.includes((offer as HTMLElement).dataset.from ?? '')) offer.remove()
    }
  }

  private showChallenge (from: string): void {
    this.challenges.querySelector(`[data-from="${CSS.escape(from)}"]`)?.remove()
    const accept = el('button', { type: 'button', class: 'accept' }, 'Accept')
    const decline = el('button', { type: 'button', class: 'decline' }, 'Decline')
    const offer = el('div', { class: 'offer', 'data-from': from }, `${from} challenges you to Connect Four `, accept, ' ', decline)
    accept.addEventListener('click', () => {
      offer.remove()
      this.actions.answer(from, true)
    })
    decline.addEventListener('click', () => {
      offer.remove()
      this.actions.answer(from, false)
    })
    this.challenges.append(offer)
  }

  private chatLine (line: ChatLine): HTMLElement {
    const time = new Date(line.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    return el('li', {}, el('time', {}, time), ' ', el('b', {}, line.from), ': ', line.text)
  }

  private say (text: string): void {
    this.notice.textContent = text
  }
}
