import { createRouter, createWebHashHistory, type RouteRecordRaw } from 'vue-router'
import { loadState, saveState } from './persist'
import AboutPage from './pages/AboutPage.vue'
import DatasetsPage from './pages/DatasetsPage.vue'
import ExportPage from './pages/ExportPage.vue'
import ReviewPage from './pages/ReviewPage.vue'
import SplitsPage from './pages/SplitsPage.vue'
import TrainingPage from './pages/TrainingPage.vue'

/**
 * The pages, in navigation order (the sidebar is built from this list). Pages are bundled
 * eagerly: one script, no lazy chunks to resolve under custom protocols.
 */
export const pages = [
  { path: '/datasets', name: 'datasets', title: 'Datasets', component: DatasetsPage },
  { path: '/splits', name: 'splits', title: 'Splits', component: SplitsPage },
  { path: '/training', name: 'training', title: 'Training', component: TrainingPage },
  { path: '/review', name: 'review', title: 'Review', component: ReviewPage },
  { path: '/export', name: 'export', title: 'Export', component: ExportPage },
  { path: '/about', name: 'about', title: 'About / System', component: AboutPage },
] as const

const routes: RouteRecordRaw[] = [
  // The page open when the app was last closed (persist.ts), else Datasets.
  { path: '/', redirect: () => lastPage() },
  ...pages.map((p) => ({
    path: p.path,
    name: p.name,
    component: p.component,
    meta: { title: p.title },
  })),
  { path: '/:rest(.*)*', redirect: '/datasets' },
]

function lastPage(): string {
  const page = loadState<string>('page', '/datasets')
  return pages.some((p) => p.path === page) ? page : '/datasets'
}

/**
 * Hash history: the app is loaded from `index.html` by a custom protocol in Electron and from
 * `/` by the server, so the path part of the URL never changes and reloads always work.
 */
export function createAppRouter() {
  const router = createRouter({ history: createWebHashHistory(), routes })
  router.afterEach((to) => {
    if (pages.some((p) => p.path === to.path)) saveState('page', to.path)
    const title = (to.meta as { title?: string }).title
    document.title = title ? `${title} · DSD Studio` : 'DSD Studio'
  })
  return router
}
